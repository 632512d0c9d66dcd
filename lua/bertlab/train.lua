-- bertlab.train: pure-Lua helpers of the train part (filled in by its issue).
return function(bl) end
