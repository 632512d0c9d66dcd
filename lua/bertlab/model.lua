-- bertlab.model: pure-Lua helpers of the model part (filled in by its issue).
return function(bl) end
