-- keras/distributed.lua: keras.distributed, data parallelism over MPI (issue 15).
--
-- The same script runs alone (`lua5.4 train.lua`) and under a launcher (`mpirun -np 4
-- lua5.4 train.lua`, `srun --mpi=pmix lua5.4 train.lua`). Under a launcher, and when keras-lua
-- was built with MPI (the module keras.distributed_mpi, distributed/dist_mpi.c), this is
-- the MPI world; otherwise a world of one process whose collectives return copies. Ranks
-- are 0-based, as MPI numbers them.
local core = require("keras.core")
local A = require("keras.argcheck")

local D = {}

-- Environment variables a launcher sets (Open MPI, MPICH/Hydra, PMIx, Slurm's PMI).
local LAUNCH_VARS = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK",
  "MPI_LOCALNRANKS"}

local function launched()
  for _, v in ipairs(LAUNCH_VARS) do
    local s = os.getenv(v)
    if s and s ~= "" then return v, s end
  end
  return nil
end

local mpi          -- the MPI module once init() found a world, else nil
local inited = false

-- Whether this build has the MPI module (whatever the launch).
function D.built_with_mpi()
  local ok = pcall(require, "keras.distributed_mpi")
  return ok
end

-- init() -> rank, size. Idempotent. Started by a launcher: MPI's world (an error when this
-- build has no MPI, rather than n unrelated copies each training alone); otherwise size 1.
function D.init()
  if not inited then
    local var, val = launched()
    if var then
      local ok, m = pcall(require, "keras.distributed_mpi")
      if not ok then
        error(string.format("keras.distributed.init: this process was started by an MPI " ..
          "launcher (%s=%s) but keras-lua was built without MPI (install openmpi-bin and " ..
          "libopenmpi-dev, then rebuild)", var, val), 0)
      end
      mpi = m
      mpi.init()
    end
    inited = true
  end
  return D.rank(), D.size()
end

function D.is_initialized() return inited end
-- Whether collectives go through MPI (a world of more than one process, or one started by
-- a launcher).
function D.is_mpi() D.init(); return mpi ~= nil end

function D.rank() if not inited then D.init() end return mpi and mpi.rank() or 0 end
function D.size() if not inited then D.init() end return mpi and mpi.size() or 1 end
function D.local_rank() if not inited then D.init() end return mpi and mpi.local_rank() or 0 end

function D.barrier()
  if not inited then D.init() end
  if mpi then mpi.barrier() end
end

local OPS = {sum = true, mean = true, max = true, min = true}

local function check_tensor(fn, t)
  if not core.is_tensor(t) then
    A.fail("%s: expected a keras.Tensor. Received: %s", fn, A.repr(t))
  end
end

-- allreduce(t, {op = "sum"|"mean"|"max"|"min"}) -> a new tensor, the same on every rank.
-- Dense tensors of any dtype; row_sparse float tensors with sum or mean (stored over the
-- union of the ranks' rows, summed in rank order).
function D.allreduce(t, opts)
  local fn = "allreduce"
  check_tensor(fn, t)
  opts = A.check_opts(fn, opts, {op = true})
  local op = opts.op or "sum"
  if not OPS[op] then
    A.fail("%s: op must be 'sum', 'mean', 'max' or 'min'. Received: op=%s", fn, A.repr(op))
  end
  if not inited then D.init() end
  if mpi then return mpi.allreduce(t, op) end
  return t:copy()
end

local function check_root(fn, root)
  if root == nil then return 0 end
  local r = A.toint(root)
  if r == nil or r < 0 or r >= D.size() then
    A.fail("%s: root must be a rank in 0..%d. Received: root=%s", fn, D.size() - 1, A.repr(root))
  end
  return r
end

-- broadcast(t[, root = 0]) -> a new tensor holding root's t (same layout on every rank).
function D.broadcast(t, root)
  check_tensor("broadcast", t)
  if not inited then D.init() end
  root = check_root("broadcast", root)
  if mpi then return mpi.broadcast(t, root) end
  return t:copy()
end

-- allgather(t) -> the ranks' t concatenated along the rows in rank order (dense or csr; row
-- counts may differ, the other dims must agree).
function D.allgather(t)
  check_tensor("allgather", t)
  if not inited then D.init() end
  if mpi then return mpi.allgather(t) end
  return t:copy()
end

-- Internal helpers of the distributed fit (models.lua): numbers and in-place broadcasts.
function D._allreduce_number(x, op)
  if mpi then return mpi.allreduce_number(x, op or "sum") end
  return x
end
function D._broadcast_number(x, root)
  if mpi then return mpi.broadcast_number(x, root or 0) end
  return x
end
-- Whether every rank holds the same bits in these tensors (and the same integer x).
function D._same_everywhere(list, x)
  if mpi then return mpi.same_everywhere(list, x) end
  return true
end
function D._broadcast_into(t, root)
  if mpi then mpi.broadcast_into(t, root or 0) end
end
-- Attaches the gradient exchange to a plan (every step then trains on the global batch).
function D._attach(plan, opts)
  if mpi and mpi.size() > 1 then mpi.attach(plan, opts) return true end
  return false
end
-- The MPI module (nil in a world of one): the sharded Embedding's collectives.
function D._module() if not inited then D.init() end return mpi end
function D._stats(plan)
  if mpi then return mpi.hook_stats(plan) end
  return nil
end

-- finalize(): ends MPI (nothing to do in a size-1 world). Optional: a script that ends
-- without it is finalized at exit, and one that ends with an error aborts the whole job.
function D.finalize()
  if mpi then mpi.finalize() end
end

-- abort([code = 1]): ends every rank of the job now.
function D.abort(code)
  if mpi then mpi.abort(code or 1) end
  os.exit(code or 1)
end

return D
