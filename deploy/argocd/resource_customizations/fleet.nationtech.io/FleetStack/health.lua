-- Argo CD health of a FleetStack (fleet.nationtech.io/v1alpha1).
--
-- Keys only on spec.paused, generations and conditions (never on free text),
-- in the order of the status contract (docs/adr/0011-status-contract.md):
--   being deleted                                   -> Progressing
--   spec.paused                                     -> Suspended
--   no status yet (or the CRD's default, observedGeneration -1),
--   status or a condition describes an older generation -> Progressing
--   Stalled=True (invalid spec, no component, not Ready in time) -> Degraded
--   Reconciling=True (a new generation converging, a rollout, or a Ready
--     stack recovering within its ready deadline)   -> Progressing
--   Ready=True                                      -> Healthy
--   Ready=False without Reconciling (status of an older controller) -> Degraded
--   Ready=Unknown or absent                         -> Progressing
-- Stalled comes before Reconciling (kstatus has them the other way round;
-- the contract never sets both) so a stack past its deadline is Degraded.
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
  hs.message = "FleetStack is being deleted"
  return hs
end

if obj.spec ~= nil and obj.spec.paused == true then
  hs.status = "Suspended"
  hs.message = "FleetStack is paused (spec.paused): the reconciler makes no changes"
  return hs
end

if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the fleet-reconciler to report status"
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the fleet-reconciler to observe generation " .. generation
  return hs
end

local conditions = obj.status.conditions
local stalled = condition(conditions, "Stalled")
local ready = condition(conditions, "Ready")
local reconciling = condition(conditions, "Reconciling")

-- A condition written for an older generation says nothing about this one.
-- (No ipairs over {stalled, ready, reconciling}: it would stop at the first
-- absent one.)
local function lagging(c)
  return c ~= nil and generation ~= nil and c.observedGeneration ~= nil
    and c.observedGeneration < generation
end
for _, name in ipairs({ "Stalled", "Ready", "Reconciling" }) do
  local c = condition(conditions, name)
  if lagging(c) then
    hs.status = "Progressing"
    hs.message = "Waiting for condition " .. name .. " to reflect generation " .. generation
    return hs
  end
end

if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

-- Before Ready, as kstatus does: work in progress is never Healthy, even
-- next to a Ready=True left from before (the contract forbids that pair,
-- but a check must not trust what it checks).
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  if ready ~= nil and ready.status ~= "True" then
    hs.message = describe(ready)
  else
    hs.message = describe(reconciling)
  end
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  return hs
end

if ready ~= nil and ready.status == "False" then
  hs.status = "Degraded"
  hs.message = describe(ready)
  return hs
end

hs.status = "Progressing"
if ready ~= nil then
  hs.message = describe(ready)
else
  hs.message = "Waiting for the Ready condition"
end
return hs
