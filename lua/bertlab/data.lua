-- bertlab.data: pure-Lua helpers of the data part (filled in by its issue).
return function(bl) end
