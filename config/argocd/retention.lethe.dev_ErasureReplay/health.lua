-- Argo CD health of Lethe's kinds (retention.lethe.dev), from the conditions
-- every kind writes (docs/design.md, "Status conventions"): Ready is always
-- present once Lethe has seen the object, Reconciling and Stalled only while
-- True. One script serves every kind; `make manifests` copies it into each
-- retention.lethe.dev_<Kind>/health.lua and into argocd-cm.yaml.
--
--   Healthy      Ready=True (a RetentionPolicy whose run is in progress too)
--   Suspended    a RetentionPolicy or PurgeJob with spec.suspend; a
--                DeletionRequest waiting for an approver or held by a
--                legal hold
--   Degraded     Stalled=True (a human must act); a DeletionRequest past its
--                deadline; a DataStore or PurgeJob failing to reach its store
--   Progressing  not yet observed, or Reconciling=True
local hs = {}

local function condition(t)
  if obj.status ~= nil and obj.status.conditions ~= nil then
    for _, c in ipairs(obj.status.conditions) do
      if c.type == t then
        return c
      end
    end
  end
  return nil
end

local function msg(c, default)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return default
end

-- Reasons of Ready=False that Lethe retries but that need attention: the
-- store cannot be reached, or a job stopped after changing records.
local failing = {
  ConnectionFailed = true, AuthenticationFailed = true, TLSVerificationFailed = true,
  NetworkNotAllowed = true, DataStoreNotReady = true, DataStoreUnavailable = true,
  Interrupted = true,
}

local ready = condition("Ready")
local observed = obj.status ~= nil and obj.status.observedGeneration ~= nil and
  (obj.metadata.generation == nil or obj.status.observedGeneration >= obj.metadata.generation)
if ready == nil or not observed then
  hs.status = "Progressing"
  hs.message = "Waiting for Lethe to observe the latest spec"
  return hs
end

local stalled = condition("Stalled")
local reconciling = condition("Reconciling")
local phase = obj.status.phase

if obj.kind == "DeletionRequest" and phase ~= "Completed" and phase ~= "Failed" then
  local deadline = condition("DeadlineMet")
  if deadline ~= nil and deadline.status == "False" then
    hs.status = "Degraded"
    hs.message = msg(deadline, "Past its deadline")
    return hs
  end
  if stalled ~= nil and stalled.status == "True" and stalled.reason == "LegalHold" then
    hs.status = "Suspended"
    hs.message = msg(stalled, "Held by a legal hold")
    return hs
  end
  if reconciling ~= nil and reconciling.status == "True" and reconciling.reason == "AwaitingApproval" then
    hs.status = "Suspended"
    hs.message = msg(reconciling, "Waiting for approval")
    return hs
  end
end

if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = msg(stalled, "Stalled")
  return hs
end

if obj.kind == "PurgeJob" and ready.status == "False" and ready.reason == "Suspended" then
  hs.status = "Suspended"
  hs.message = msg(ready, "Suspended")
  return hs
end

if ready.status == "True" then
  if obj.kind == "RetentionPolicy" and ready.reason == "Suspended" then
    hs.status = "Suspended"
  else
    hs.status = "Healthy"
  end
  hs.message = msg(ready, ready.reason)
  return hs
end

if obj.kind == "RetentionPolicy" and reconciling ~= nil and reconciling.status == "True" and reconciling.reason == "RunInProgress" then
  hs.status = "Healthy"
  hs.message = msg(reconciling, "Run in progress")
  return hs
end

if failing[ready.reason] then
  hs.status = "Degraded"
  hs.message = msg(ready, ready.reason)
  return hs
end

hs.status = "Progressing"
hs.message = msg(reconciling, msg(ready, "Reconciling"))
return hs
