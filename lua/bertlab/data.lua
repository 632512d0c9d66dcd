-- bertlab.data: the pure-Lua helpers of the data part: bl.unique and bl.value_counts (pandas
-- semantics on Lua arrays). Reading CSV files, splitting and batching are C (lua/l_data.c).
return function(bl)
  local function check_list(list, fname)
    if type(list) ~= "table" then
      error(("%s: expected a Lua array (a data frame column), got %s"):format(fname, type(list)), 3)
    end
    local n = #list
    for i = 1, n do
      if list[i] == nil then error(("%s: element %d is nil"):format(fname, i), 3) end
    end
    return n
  end

  -- bl.unique(list): the distinct values in order of first appearance (pandas Series.unique).
  function bl.unique(list)
    local n = check_list(list, "unique")
    local seen, out = {}, {}
    for i = 1, n do
      local v = list[i]
      if not seen[v] then
        seen[v] = true
        out[#out + 1] = v
      end
    end
    return out
  end

  -- bl.value_counts(list): {{value, count}, ...} sorted by count, descending, ties in order of
  -- first appearance (pandas Series.value_counts); each entry also has .value and .count.
  -- Second result: a table value -> count.
  function bl.value_counts(list)
    local n = check_list(list, "value_counts")
    local counts, first, order = {}, {}, {}
    for i = 1, n do
      local v = list[i]
      if counts[v] then
        counts[v] = counts[v] + 1
      else
        counts[v] = 1
        first[v] = i
        order[#order + 1] = v
      end
    end
    table.sort(order, function(a, b)
      if counts[a] ~= counts[b] then return counts[a] > counts[b] end
      return first[a] < first[b]
    end)
    local out = {}
    for i, v in ipairs(order) do
      out[i] = { v, counts[v], value = v, count = counts[v] }
    end
    return out, counts
  end
end
