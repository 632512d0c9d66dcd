-- bertlab.tokenizer: pure-Lua helpers of the tokenizer part (filled in by its issue).
return function(bl) end
