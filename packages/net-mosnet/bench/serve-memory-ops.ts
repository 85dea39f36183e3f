// The daemon side of the benchmark, in its own process as mosnetd would be: serves createMemoryNetOps() on the
// socket given as argv[2], says 'listening' over IPC, and answers any IPC message with its CPU time so far (ms).
import { createMemoryNetOps } from '@my-hypervisor/net-ops';
import { createMosnetServer } from '../src/server/index.js';

const socketPath = process.argv[2];
if (!socketPath) throw new TypeError('usage: serve-memory-ops.ts <socket path>');
const server = await createMosnetServer({ ops: createMemoryNetOps(), socketPath });
process.on('message', () => {
  const { user, system } = process.cpuUsage();
  process.send?.((user + system) / 1000);
});
process.send?.('listening');
process.on('disconnect', () => {
  void server.close().then(() => process.exit(0));
});
