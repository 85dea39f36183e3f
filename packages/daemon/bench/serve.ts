// The daemon side of the benchmark, in its own process as myhvd would be: a manager over an in-memory network and
// the VMM simulator (test/harness.ts), optionally seeded with N stopped VMs (argv[2]), served by createDaemon with
// its default watcher (and with MYHV_BENCH_DASHBOARD=1 the dashboard on a free port). Prints a ready line, sends
// { socketPath, stateDir, kernel, dashboardUrl } over IPC, answers any other
// IPC message with its CPU time so far (ms), and on disconnect closes the daemon and
// deletes its VMs and directories.
import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeWorld } from '../test/harness.js';
import { seedState } from './seed-state.js';

/** vm-manager re-reads state files changed in the last 2 s instead of caching them; seeded ones must be older. */
const SETTLE_MS = 2_100;

const seed = Number(process.argv[2] ?? 0);
if (!Number.isInteger(seed) || seed < 0) throw new TypeError('usage: serve.ts [number of VMs to seed]');
const world = await makeWorld();
if (seed > 0) {
  await seedState(world.stateDir, seed);
  await sleep(SETTLE_MS);
}
// The watcher as shipped (every 2 s), not the tests' 0. MYHV_BENCH_DASHBOARD=1 serves the dashboard too.
const withDashboard = process.env.MYHV_BENCH_DASHBOARD === '1';
const daemon = await world.daemon({
  watchIntervalMs: 2_000,
  ...(withDashboard ? { dashboard: { port: 0 } } : {}),
});
process.on('message', () => {
  const { user, system } = process.cpuUsage();
  process.send?.((user + system) / 1000);
});
process.once('disconnect', () => {
  // Seeded VMs never ran: removing the directories is enough (deleting 1,000 one by one takes seconds).
  const cleanUp =
    seed > 0
      ? daemon.close().then(async () => {
          await rm(dirname(world.stateDir), { recursive: true, force: true });
          await rm(world.runDir, { recursive: true, force: true });
        })
      : world[Symbol.asyncDispose]();
  void Promise.resolve(cleanUp).finally(() => process.exit(0));
});
console.log(`myhvd bench daemon: pid ${process.pid}, ${seed} VMs seeded, listening on ${daemon.socketPath}`);
process.send?.({
  socketPath: daemon.socketPath,
  stateDir: world.stateDir,
  kernel: world.kernel,
  dashboardUrl: daemon.dashboard?.url,
});
