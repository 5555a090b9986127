-- shm.mpi: loads the MPI module (luashm_mpi.so) at first use, so that scripts that never touch
-- MPI neither need mpirun nor pay for loading libmpi; plus the parts best written in Lua.
local shm = ...

local mod
local function load()
  if not mod then
    local ok, m = pcall(require, "luashm_mpi")
    if not ok then
      error("luashm: mpi: the MPI module is not available (build luashm with an MPI, e.g. "
        .. "Debian's libmpich-dev, and keep luashm_mpi.so on package.cpath): " .. tostring(m), 0)
    end
    mod = m
  end
  return mod
end

local mpi = {}

-- Whether this process was started by mpirun/mpiexec (MPICH's Hydra, Open MPI, Slurm's PMI).
function mpi.launched()
  return os.getenv("PMI_RANK") ~= nil or os.getenv("OMPI_COMM_WORLD_RANK") ~= nil
    or os.getenv("PMI_SIZE") ~= nil
end

-- Whether the MPI module can be loaded here.
function mpi.available()
  return (pcall(load))
end

-- One Array per machine, shared by name by every rank on it: the node's first rank creates it
-- (a self-describing luashm array: NumPy opens it too, and the creator's tracker removes it if
-- the job dies), the others open it by name. Collective: every rank calls it. The creator
-- unlinks it with mpi.free(a) (also collective) or at exit through its tracker.
function mpi.shared_array(dtype, shape)
  local m = load()
  local first = m.node() == 1
  local a = first and shm.array(dtype, shape) or nil
  local name = m.node_bcast(first and a.name or nil)
  if not first then a = shm.open(name) end
  m.barrier()
  return a
end

function mpi.free(a)
  local m = load()
  m.barrier()
  if m.node() == 1 then a.block:unlink() end
  a:close()
end

shm.mpi = setmetatable(mpi, { __index = function(_, k) return load()[k] end })
