-- bertlab.progress: pure-Lua helpers of the progress part (filled in by its issue).
return function(bl) end
