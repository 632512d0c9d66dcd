-- bertlab: the module scripts get from require("bertlab").
-- The C core (tensors, model, optimizer, data) is extended by the pure-Lua parts below; each part is
-- a file lua/bertlab/<part>.lua returning function(bl) that adds its functions to the table.
local bl = require("bertlab.core")
for _, part in ipairs({ "util", "data", "tokenizer", "model", "train", "metrics", "progress", "record", "chart", "state", "sweep" }) do
  require("bertlab." .. part)(bl)
end
return bl
