-- spec/helper.lua: loaded by busted before every spec (ctest passes --helper).
-- Shared test utilities live in spec/support.lua; this file only checks the setup.
assert(_VERSION == "Lua 5.4", "run the specs under lua5.4, not " .. _VERSION)
