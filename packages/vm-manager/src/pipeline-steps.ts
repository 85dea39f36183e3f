import { promises as fs, rmSync } from 'node:fs';
import type { ChvClient } from '@my-hypervisor/chv-client';
import { deriveTapName } from '@my-hypervisor/net-ops';
import { ensurePrivateDir } from './dir-trust.js';
import { VmManagerError } from './errors.js';
import { assertNicsPossible, attachNic, detachNic, nicNetConfigs } from './nics.js';
import type { PipelineStep } from './pipeline.js';
import { waitForConsole, withSerialRelay } from './serial-console.js';
import { dropStandby, takeOverStandby } from './standby.js';
import type { VmmRecord, VmRecord, VmStatus } from './state-store.js';
import { buildVmConfig } from './vm-config.js';
import { shareSocket } from './vm-info.js';
import {
  attachRequest,
  detachRequest,
  forwardRule,
  releaseShares,
  removeForwards,
  type VmHost,
  vmmOptionsFor,
  vmPaths,
} from './vm-resources.js';
import { explainVmmExit, killVmmNow, spawnVmm, stopVmm, vmmGone } from './vmm.js';

// The steps of VmManager's pipelines, each recorded before it runs and undone in reverse on failure (pipeline.ts).

/**
 * uid: a confined VM's own uid, before its TAP is made for it. Undone (the uid, cgroup and disks given back) only
 * when the VM is being created: a stopped VM keeps its uid.
 */
export function confinementSteps(host: VmHost, record: VmRecord, creating: boolean): PipelineStep[] {
  if (!host.confiner.enabled(record.spec)) return [];
  return [
    {
      name: 'uid',
      recordBefore: false,
      run: async () => {
        // A VM being created has its uid recorded by the "in progress" write of the next step that makes something
        // for it (network, shares or vmm: every one writes first), not by a write of its own. The uid's marker names
        // the VM, so a crash before leaves nothing reconcile cannot sweep. Otherwise (a start whose uid had to be
        // claimed again) it is recorded at once, as the steps after it write nothing first.
        await host.confiner.assign(record, creating ? async () => {} : () => host.store.write(record));
      },
      ...(creating
        ? {
            undo: async () => {
              await host.confiner.release(record);
            },
          }
        : {}),
    },
  ];
}

/** ip → network → forwards: what `create` does before the VMM exists. */
export function networkSteps(host: VmHost, record: VmRecord): PipelineStep[] {
  if (!record.spec.network.enabled) return [];
  return [
    {
      name: 'ip',
      // Reservations are keyed by the VM id, which the record already holds: nothing more to write first.
      recordBefore: false,
      run: async (signal) => {
        record.resources.ip = await host.ipam(record).allocate(record.id, signal ? { signal } : {});
      },
      undo: async () => {
        await host.ipam(record).release(record.id);
        delete record.resources.ip;
      },
    },
    {
      name: 'network',
      intent: () => {
        record.resources.tap = deriveTapName(record.id);
      },
      run: async (signal) => {
        const attachment = await host.network(record).attach(attachRequest(record), signal ? { signal } : {});
        record.resources.network = attachment;
        if (record.spec.network.mycelium && !attachment.ipv6) {
          throw new VmManagerError(
            'NETWORK_FAILED',
            `${record.name}: the mycelium network gave no IPv6 address`,
            {
              details: { vm: record.name, step: 'network' },
            },
          );
        }
      },
      undo: async () => {
        if (!record.resources.tap) return;
        await host.network(record).detach(detachRequest(record));
        delete record.resources.network;
        delete record.resources.tap;
      },
    },
    ...nicSteps(host, record),
    {
      name: 'forwards',
      intent: () => {
        record.resources.forwards = record.spec.network.forwards.map((f) => forwardRule(record, f));
      },
      run: async (signal) => {
        if (record.resources.forwards.length === 0) return;
        const results = await Promise.allSettled(
          record.resources.forwards.map((rule) =>
            host.nat(record).addForward(rule, signal ? { signal } : {}),
          ),
        );
        const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failed) throw failed.reason;
      },
      undo: async () => {
        await removeForwards(host, record);
      },
    },
  ];
}

/** The extra NICs of a VM being created (`spec.nics`): each one's address and TAP, undone together. */
function nicSteps(host: VmHost, record: VmRecord): PipelineStep[] {
  const nics = record.spec.nics ?? [];
  if (nics.length === 0) return [];
  return [
    {
      name: 'nics',
      run: async (signal) => {
        assertNicsPossible(record, 'nics');
        for (const nic of nics) await attachNic(host, record, nic, () => host.store.write(record), signal);
      },
      undo: async () => {
        for (const nic of [...(record.resources.nics ?? [])]) await detachNic(host, record, nic.id);
      },
    },
  ];
}

/**
 * network-ensure → forwards-ensure: what `start` does first. The record is the desired state: after a reboot (or
 * anyone deleting them) the bridge, the TAP and the forwards are gone while the record still names them, so they
 * are made again, idempotently — an existing TAP is adopted, an existing forward left as it is.
 */
export function reassertSteps(host: VmHost, record: VmRecord): PipelineStep[] {
  if (!record.spec.network.enabled || !record.resources.ip) return [];
  return [
    {
      name: 'network-ensure',
      // Adopting or re-making the recorded TAP creates nothing the record does not already name.
      recordBefore: false,
      run: async (signal) => {
        record.resources.tap ??= deriveTapName(record.id);
        record.resources.network = await host
          .network(record)
          .attach(attachRequest(record), signal ? { signal } : {});
      },
    },
    ...(record.spec.nics?.length
      ? [
          {
            name: 'nics-ensure',
            recordBefore: false,
            run: async (signal?: AbortSignal) => {
              for (const nic of record.spec.nics ?? [])
                await attachNic(host, record, nic, () => host.store.write(record), signal);
            },
          },
        ]
      : []),
    {
      name: 'forwards-ensure',
      recordBefore: false,
      run: async (signal) => {
        for (const rule of record.resources.forwards)
          await host.nat(record).addForward(rule, signal ? { signal } : {});
      },
    },
  ];
}

/** shares → vmm → vm.create → vm.boot → confirm: what `create` and `start` do. */
export function bootSteps(host: VmHost, record: VmRecord): PipelineStep[] {
  const paths = vmPaths(host, record);
  let client: ChvClient | undefined;
  let landlockRules: { path: string; access: 'r' | 'rw' }[] | undefined;
  const steps: PipelineStep[] = [];
  if (record.spec.shares.length > 0) {
    steps.push({
      name: 'shares',
      intent: () => {
        record.resources.shares = record.spec.shares.map((s) => ({
          id: `${record.id}-${s.tag}`,
          tag: s.tag,
        }));
      },
      run: async (signal) => {
        const storage = host.storage();
        const prepared = await Promise.allSettled(
          record.spec.shares.map((s) =>
            storage.prepare(
              { id: `${record.id}-${s.tag}`, hostPath: s.hostPath, tag: s.tag, readOnly: s.readOnly },
              signal ? { signal } : {},
            ),
          ),
        );
        record.resources.shares = record.resources.shares.map((s, i) => {
          const p = prepared[i];
          return p?.status === 'fulfilled' ? { ...s, record: p.value.record } : s;
        });
        const failed = prepared.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failed) throw failed.reason;
      },
      undo: () => releaseShares(host, record),
    });
  }
  steps.push(
    {
      name: 'vmm',
      intent: () => {
        record.resources.vmm = { socketPath: paths.socket, pidFile: paths.pidFile, logFile: paths.vmmLog };
      },
      run: async (signal) => {
        ensurePrivateDir(paths.runDir, 'the run directory');
        const confined = await host.confiner.prepare(record, paths, () => host.store.write(record), signal);
        landlockRules = confined?.landlockRules;
        // While the VMM starts: the record gets its pid, and its serial relay starts (it waits, watching the run
        // directory, for the serial socket that boot or restore binds), both recorded in one write.
        const onLaunched = async (vmm: VmmRecord) => {
          // Known to the undo at once.
          record.resources.vmm = vmm;
          record.resources.vmm = withSerialRelay(host, record, vmm);
          await host.store.write(record);
        };
        const spawned = await spawnVmm(
          vmmOptionsFor(host, record),
          { socketPath: paths.socket, pidFile: paths.pidFile, logFile: paths.vmmLog },
          {
            ...(record.spec.vmm.binary ? { binary: record.spec.vmm.binary } : {}),
            extraArgs: record.spec.vmm.extraArgs,
            privateFiles: [paths.serialLog],
            ...(confined ? { confine: confined.confine } : {}),
            ...(host.journal ? { eventFile: paths.vmmEvents } : {}),
            onLaunched,
          },
          signal,
        ).catch((error: unknown) => {
          throw explainVmmExit(error, record.name);
        });
        client = spawned.client;
      },
      undo: async () => {
        client?.close();
        await stopVmm(record.resources.vmm, { gracefulMs: 0 });
        await fs.rm(paths.runDir, { recursive: true, force: true });
        delete record.resources.vmm;
      },
    },
    {
      name: 'vm.create',
      recordBefore: false,
      run: async (signal) => {
        const config = buildVmConfig({
          spec: record.spec,
          ...(record.resources.network ? { network: record.resources.network } : {}),
          shares: record.resources.shares.map((s) => ({ tag: s.tag, socketPath: shareSocket(s) })),
          serialSocket: paths.serialSocket,
          ...(landlockRules ? { landlockRules } : {}),
          nics: nicNetConfigs(record),
        });
        await client!.vmCreate(config, signal ? { signal } : {});
      },
    },
    {
      name: 'vm.boot',
      recordBefore: false,
      run: async (signal) => {
        await client!.vmBoot(signal ? { signal } : {});
      },
    },
    {
      name: 'confirm',
      recordBefore: false,
      run: async (signal) => {
        const info = await client!.vmInfo(signal ? { signal } : {});
        client!.close();
        if (info.state !== 'Running') {
          throw new VmManagerError('VMM_FAILED', `${record.name}: the VMM reports ${info.state} after boot`, {
            details: { vm: record.name, step: 'confirm' },
          });
        }
        // Once the relay serves the console, it is also writing serial.log (`vm logs` right after create).
        const relay = record.resources.vmm?.serialRelay;
        // The relay is a process of its own starting beside the VMM: it gets the same start-up budget.
        if (relay) {
          await waitForConsole(relay, paths.consoleSocket, {
            timeoutMs: host.vmm.readyTimeoutMs ?? 10_000,
            ...(signal ? { signal } : {}),
          });
        }
      },
    },
  );
  return steps;
}

/**
 * vmm stop → shares release (for a VM with shares): what `stop` and `delete` do. `kill`: SIGKILL the VMM, no
 * ladder (restore, which throws the guest's state away).
 */
export function haltSteps(host: VmHost, record: VmRecord, gracefulMs: number, kill = false): PipelineStep[] {
  const shares = record.spec.shares.length > 0 || record.resources.shares.length > 0;
  return [
    {
      name: 'vmm-stop',
      run: async (signal) => {
        await stopVmm(record.resources.vmm, { gracefulMs, kill, ...(signal ? { signal } : {}) });
        await fs.rm(vmPaths(host, record).runDir, { recursive: true, force: true });
        delete record.resources.vmm;
        // A stopped VM keeps no standby (standby.ts).
        await dropStandby(host, record);
        await host.store.write(record);
      },
    },
    ...(shares
      ? [
          {
            name: 'shares-release',
            run: async () => {
              await releaseShares(host, record);
              await host.store.write(record);
            },
          },
        ]
      : []),
  ];
}

/**
 * vmm-stop and vmm-gone: how restore ends a running VM without shares while its next VMM starts. `stop` (written
 * as in progress first, so a crash from here on leaves a VM reconcile marks stopped, whatever VMM then runs) sends
 * the VMM and its serial relay SIGKILL and removes their run directory (the next VMM makes its sockets anew there),
 * without waiting. The `vmm` step after it needs no write of its own before it: the record already names the same
 * paths, and the restore as in progress. `gone` runs alongside the `vmm` step and waits until both processes have
 * exited: the TAP is the dead VMM's until then. With a live `standby`, `stop` also makes it the VM's VMM (standby.ts):
 * the `vmm` step is then `adoptStep`.
 */
export function replaceSteps(
  host: VmHost,
  record: VmRecord,
  standby?: VmmRecord,
): { stop: PipelineStep; gone: PipelineStep & { recordBefore: false } } {
  let dying: VmmRecord | undefined;
  return {
    stop: {
      name: 'vmm-stop',
      run: async () => {
        dying = record.resources.vmm;
        if (dying) killVmmNow(dying);
        rmSync(vmPaths(host, record).runDir, { recursive: true, force: true });
        // A failure from here on leaves the VM stopped (VmManager's #run), as a restore that stopped it.
        delete record.resources.vmm;
        // With a standby, it is the next VMM from here on (standby.ts; `adoptStep` records it).
        if (standby) takeOverStandby(host, record, standby);
      },
    },
    gone: {
      name: 'vmm-gone',
      recordBefore: false,
      run: async () => {
        if (dying) await vmmGone(dying);
      },
    },
  };
}

/** The last step of every operation: the record gets its new status, and pending work and errors are cleared. */
export function finalStep(host: VmHost, record: VmRecord, status: VmStatus): PipelineStep {
  return {
    name: 'record',
    recordBefore: false,
    run: async () => {
      record.status = status;
      delete record.pending;
      delete record.lastError;
      await host.store.write(record);
    },
  };
}
