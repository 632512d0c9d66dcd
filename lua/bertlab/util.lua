-- bertlab.util: pure-Lua helpers of the util part (filled in by its issue).
return function(bl) end
