-- bertlab.tokenizer: pure-Lua conveniences over the C BertTokenizer (lua/l_tokenizer.c):
-- tok:encode_plus(s, opts) and tok:batch_decode(list, opts), built on the batch calls.
return function(bl)
  local methods = bl.BertTokenizer and bl.BertTokenizer.methods
  if not methods then return end

  -- tok:encode_plus(s[, opts]): one text → {input_ids=, attention_mask=, token_type_ids=} as Lua lists
  -- (transformers' encode_plus without return_tensors). Options as batch_encode_plus, except that
  -- padding defaults to false and max_length to none.
  function methods:encode_plus(s, opts)
    if type(s) ~= "string" then
      error(("bad argument #1 to 'encode_plus' (string expected, got %s)"):format(type(s)), 2)
    end
    local o = { padding = false, max_length = false }
    for k, v in pairs(opts or {}) do o[k] = v end
    local r = self:batch_encode_plus({ s }, o)
    local out = {}
    for k, v in pairs(r) do
      if bl.is_tensor(v) then out[k] = v:totable()[1] else out[k] = v[1] end
    end
    return out
  end

  -- tok:batch_decode(list_of_id_lists[, opts]) → list of strings (each as tok:decode(ids, opts));
  -- a 2-D int64 tensor is accepted too.
  function methods:batch_decode(seqs, opts)
    if bl.is_tensor(seqs) then seqs = seqs:totable() end
    if type(seqs) ~= "table" then
      error(("bad argument #1 to 'batch_decode' (table expected, got %s)"):format(type(seqs)), 2)
    end
    local out = {}
    for i, ids in ipairs(seqs) do out[i] = self:decode(ids, opts) end
    return out
  end
end
