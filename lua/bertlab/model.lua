-- bertlab.model: pure-Lua helpers of the model part: softmax probabilities for classification.
-- The model itself (bl.BertForSequenceClassification) is C: lua/l_model.c on runtime/bert.c.
return function(bl)
  -- Row-wise softmax of a [B,L] float32 tensor (the logits), as a Lua list of B lists of L numbers.
  local function softmax_rows(logits)
    local rows = logits:totable()
    for _, row in ipairs(rows) do
      local mx = -math.huge
      for _, v in ipairs(row) do if v > mx then mx = v end end
      local sum = 0
      for j, v in ipairs(row) do row[j] = math.exp(v - mx); sum = sum + row[j] end
      for j = 1, #row do row[j] = row[j] / sum end
    end
    return rows
  end

  local methods = debug.getregistry()["bertlab.BertForSequenceClassification"].__index

  -- model:predict_proba{input_ids=, attention_mask=, token_type_ids=} -> probabilities [B][L]
  -- (Lua lists; row b, column j+1 is the probability of class id j), computed in the model's
  -- current mode (call model:eval() first for deterministic results).
  function methods.predict_proba(model, batch)
    if type(batch) ~= "table" then
      error(("bad argument #1 to 'predict_proba' (table expected, got %s)"):format(type(batch)), 2)
    end
    local out = model:forward({ input_ids = batch.input_ids, attention_mask = batch.attention_mask,
                                token_type_ids = batch.token_type_ids })
    local probs = softmax_rows(out.logits)
    out.logits:free()
    return probs
  end
end
