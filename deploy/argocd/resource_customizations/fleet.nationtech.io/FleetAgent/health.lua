-- Argo CD health of a FleetAgent (fleet.nationtech.io/v1alpha1): one agent
-- as the fleet operator sees it through its heartbeats.
--   being deleted                          -> Progressing
--   no status / no Ready condition yet     -> Progressing (no heartbeat seen)
--   status for an older generation         -> Progressing
--   Ready=True  (connected)                -> Healthy
--   Ready=False (disconnected: missed heartbeats) -> Degraded
--   Ready=Unknown                          -> Progressing
-- observedGeneration is honoured when the operator writes it and not
-- required otherwise: FleetAgent objects have no user-edited spec.
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
  hs.message = "FleetAgent is being deleted"
  return hs
end

if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the agent's first heartbeat"
  return hs
end

local generation = obj.metadata.generation
local ready = condition(obj.status.conditions, "Ready")
if generation ~= nil then
  local observed = obj.status.observedGeneration
  if ready ~= nil and ready.observedGeneration ~= nil then
    observed = ready.observedGeneration
  end
  if observed ~= nil and observed < generation then
    hs.status = "Progressing"
    hs.message = "Waiting for the fleet operator to observe generation " .. generation
    return hs
  end
end

if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the agent's first heartbeat"
  return hs
end

if ready.status == "True" then
  hs.status = "Healthy"
elseif ready.status == "False" then
  hs.status = "Degraded"
else
  hs.status = "Progressing"
end
hs.message = describe(ready)
return hs
