import { openManager, vmNamespacePrefix } from '../backends.js';
import { CliError } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import { interruptible } from '../interruptible.js';
import type { CommandHandler } from '../run.js';
import { changeTarget } from '../vm-view.js';
import { describeVmm, vmmJson, withVmmHint } from '../vmm-choice.js';

/** What autostart did with one VM whose restart policy is `on-boot` or `always`. */
interface AutostartResult {
  readonly vm: string;
  /** started; running: it already was; failed: see error. */
  readonly result: 'started' | 'running' | 'failed';
  readonly status: string;
  readonly error?: { code: string; message: string };
}

/**
 * `myhv autostart`: what the systemd unit runs at boot. First `gc`'s repairs (a reboot took the VMMs, TAPs, the
 * bridge, the forwards and the run dir: VMs are marked stopped, their network comes back), then every VM whose
 * spec says `restart: on-boot` or `always` is started. Exit 1 when one could not be started; the others still are.
 */
export const autostart: CommandHandler = async (ctx) => {
  const config = await ctx.config();
  const vmm = await ctx.vmm();
  ctx.out.print(describeVmm(vmm));
  const parts = await openManager(config, { kind: 'full', vmm });
  ctx.defer(parts.close);
  const { manager } = parts;
  const report = await interruptible(ctx, (signal) => manager.reconcile({ signal }));
  const results: AutostartResult[] = [];
  for (const vm of await manager.list()) {
    if (vm.spec.restart === 'no') continue;
    if ((vm.status === 'running' || vm.status === 'paused') && vm.vmmAlive) {
      results.push({ vm: vm.name, result: 'running', status: vm.status });
      continue;
    }
    try {
      const info = await interruptible(ctx, (signal) => manager.start(vm.name, { signal }));
      results.push({ vm: vm.name, result: 'started', status: info.status });
    } catch (caught) {
      if (CliError.isInstance(caught) && caught.code === 'INTERRUPTED') throw caught;
      const error = withVmmHint(caught, vmm) as { code?: unknown; message?: unknown };
      results.push({
        vm: vm.name,
        result: 'failed',
        status: (await manager.get(vm.name).catch(() => vm)).status,
        error: { code: String(error.code ?? 'UNEXPECTED'), message: String(error.message) },
      });
    }
  }
  const failed = results.filter((r) => r.result === 'failed');
  ctx.out.result({ vmm: vmmJson(vmm), repairs: report, vms: results }, () => {
    const { out } = ctx;
    for (const c of report.changes)
      out.print(`repaired ${c.kind} ${changeTarget(c, vmNamespacePrefix(config.stateDir))}: ${c.action}`);
    for (const e of report.errors) out.print(out.bad(`repair of ${e.target} failed: ${e.message}`));
    if (results.length === 0) out.print(out.ok('no VM has restart policy on-boot or always'));
    for (const r of results) {
      if (r.result === 'failed') out.print(out.bad(`${r.vm}: not started: ${r.error!.message}`));
      else out.print(out.ok(`${r.vm}: ${r.result === 'started' ? 'started' : 'already running'}`));
    }
  });
  return failed.length > 0 || report.errors.length > 0 ? ExitCode.FAILED : ExitCode.OK;
};
