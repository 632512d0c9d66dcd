-- bertlab.metrics: pure-Lua helpers of the metrics part (filled in by its issue).
return function(bl) end
