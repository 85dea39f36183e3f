// Records the real-answers matrix (test/real-answers/v53.0.0.json) from the real Cloud Hypervisor binary.
// Needs a host with /dev/kvm, and root (CAP_NET_ADMIN) for the exchanges where the VMM creates a TAP.
// Usage: pnpm --filter @my-hypervisor/chv-client record:real-answers
//   MYHV_CLOUD_HYPERVISOR=path/to/cloud-hypervisor (default ../../shared/cloud-hypervisor/bin/cloud-hypervisor)
import { spawn } from 'node:child_process';
import { constants, existsSync } from 'node:fs';
import { access, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { writeProbeGuest } from '../src/testing/probe-guest.js';
import {
  type Exchange,
  eventLines,
  fixturePath,
  loadFixture,
  runSteps,
  writeExchangeFiles,
} from '../test/real-answers/matrix.js';

const packageDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const binary = resolve(
  packageDir,
  process.env.MYHV_CLOUD_HYPERVISOR || '../../shared/cloud-hypervisor/bin/cloud-hypervisor',
);

function stop(message: string): never {
  console.error(`record-real-answers: ${message}`);
  process.exit(1);
}

try {
  await access('/dev/kvm', constants.R_OK | constants.W_OK);
} catch {
  stop('/dev/kvm is missing or not accessible: the real VMM cannot start a VM here. Run this on a KVM host.');
}
if (!existsSync(binary)) stop(`no Cloud Hypervisor binary at ${binary} (set MYHV_CLOUD_HYPERVISOR)`);

/** Starts the VMM in API mode and waits for its socket; stops the script when it exits first. */
async function startVmm(dir: string) {
  const socketPath = join(dir, 'api.sock');
  const eventFile = join(dir, 'events.json');
  const child = spawn(
    binary,
    ['--api-socket', `path=${socketPath}`, '--event-monitor', `path=${eventFile}`],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  const deadline = Date.now() + 10_000;
  while (!existsSync(socketPath)) {
    const early = await Promise.race([exited, sleep(20).then(() => 'running' as const)]);
    if (early !== 'running')
      stop(`${binary} exited (${early}) before its API socket appeared:\n${stderr.trim()}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      stop(`${binary} did not create its API socket within 10 s:\n${stderr.trim()}`);
    }
  }
  return {
    socketPath,
    eventFile,
    async close() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await Promise.race([exited, sleep(5_000).then(() => child.kill('SIGKILL'))]);
    },
  };
}

async function record(exchange: Exchange): Promise<Exchange> {
  const dir = await mkdtemp(join(tmpdir(), 'chv-rec-'));
  try {
    const kernel = await writeProbeGuest(join(dir, 'vmlinux'));
    await writeExchangeFiles(exchange, dir);
    const vmm = await startVmm(dir);
    let answers: Awaited<ReturnType<typeof runSteps>>;
    try {
      answers = await runSteps(exchange, { socketPath: vmm.socketPath, dir, kernel });
    } finally {
      await vmm.close();
    }
    const events = exchange.events
      ? eventLines(await readFile(vmm.eventFile, 'utf8').catch(() => ''))
      : undefined;
    return {
      ...exchange,
      steps: exchange.steps.map((step, i) => ({ ...step, answer: answers[i]! })),
      ...(events ? { events } : {}),
      source: 'recorded',
      note: `recorded from ${binary} on ${new Date().toISOString().slice(0, 10)}; before: ${firstNote(exchange)}`,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const fixture = await loadFixture();
/** What the exchange said before it was first recorded (a re-recording keeps that, not a chain of re-recordings). */
function firstNote(exchange: Exchange): string {
  let note = `${exchange.source}: ${exchange.note}`;
  for (;;) {
    const earlier = /^recorded: recorded from .*? on \d{4}-\d{2}-\d{2}; before: (.*)$/s.exec(note);
    if (!earlier) return note;
    note = earlier[1]!;
  }
}

const exchanges: Exchange[] = [];
for (const exchange of fixture.exchanges) {
  console.info(`recording: ${exchange.name}`);
  exchanges.push(await record(exchange));
}
await writeFile(fixturePath, `${JSON.stringify({ ...fixture, exchanges }, null, 2)}\n`);
console.info(`wrote ${exchanges.length} exchanges to ${fixturePath}`);
