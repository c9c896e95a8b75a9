-- Argo CD health of a FleetCommand (fleet.nationtech.io/v1alpha1): a command
-- fanned out once per generation to the agents its selector matches.
--   being deleted                              -> Progressing
--   no status yet                              -> Progressing (not sent yet)
--   status for an older generation             -> Progressing (new generation not sent yet)
--   Failed=True                                -> Degraded
--   Complete=True                              -> Healthy
--   anything else                              -> Progressing (waiting for replies)
-- Failed is checked before Complete: a command that ended with failures
-- must not look Healthy even when it is also complete.
-- Written for Lua 5.1 (Argo CD runs gopher-lua).
local hs = {}

local function condition(conditions, ctype)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == ctype then
      return c
    end
  end
  return nil
end

local function describe(c)
  if c.message ~= nil and c.message ~= "" then
    return c.reason .. ": " .. c.message
  end
  return c.reason
end

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "FleetCommand is being deleted"
  return hs
end

if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the fleet operator to send the command"
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and observed ~= nil and observed < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the fleet operator to send generation " .. generation
  return hs
end

local failed = condition(obj.status.conditions, "Failed")
local complete = condition(obj.status.conditions, "Complete")
for _, c in ipairs({ "Failed", "Complete" }) do
  local cond = condition(obj.status.conditions, c)
  if cond ~= nil and generation ~= nil and cond.observedGeneration ~= nil
    and cond.observedGeneration < generation then
    hs.status = "Progressing"
    hs.message = "Waiting for condition " .. c .. " to reflect generation " .. generation
    return hs
  end
end

if failed ~= nil and failed.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(failed)
  return hs
end

if complete ~= nil and complete.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(complete)
  return hs
end

hs.status = "Progressing"
hs.message = "Waiting for the agents' replies"
return hs
