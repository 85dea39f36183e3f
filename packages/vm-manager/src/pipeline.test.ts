import { ChvApiError } from '@my-hypervisor/chv-client';
import { describe, expect, it } from 'vitest';
import { VmManagerError } from './errors.js';
import type { StepEvent } from './events.js';
import { runPipeline, stepError, withAlongside } from './pipeline.js';

describe('stepError', () => {
  it('names the VM and the step once, keeps the cause, and maps the step to its code', () => {
    const vmm = new ChvApiError('INTERNAL', 'vm.boot failed: Kernel Loader: Invalid bzImage');
    const error = stepError(vmm, 'web', 'vm.boot');
    expect(error.message).toBe('web: vm.boot failed: Kernel Loader: Invalid bzImage');
    expect(error).toMatchObject({ code: 'VMM_FAILED', details: { vm: 'web', step: 'vm.boot' } });
    expect(error.cause).toBe(vmm);
    const network = stepError(new Error('RTNETLINK answers: File exists'), 'web', 'network');
    expect(network.message).toBe('web: network failed: RTNETLINK answers: File exists');
    expect(network.code).toBe('NETWORK_FAILED');
  });

  it('passes a VmManagerError through unchanged', () => {
    const inner = new VmManagerError('TIMEOUT', 'web: confirm timed out');
    expect(stepError(inner, 'web', 'confirm')).toBe(inner);
  });
});

describe('steps run alongside another', () => {
  const recorder = () => {
    const events: string[] = [];
    const ctx = {
      vm: 'web',
      op: 'restore' as const,
      beforeStep: async (step: string) => {
        events.push(`write ${step}`);
      },
      emit: (e: StepEvent) => {
        if (e.type === 'step') events.push(`${e.phase} ${e.step}`);
      },
    };
    return { events, ctx };
  };
  const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  it('run at the same time as the step, one after another, each with its own events', async () => {
    const { events, ctx } = recorder();
    const log: string[] = [];
    const slow = (name: string, ms: number) => async () => {
      log.push(`${name} began`);
      await pause(ms);
      log.push(`${name} ended`);
    };
    const [step] = withAlongside({ name: 'vmm', run: slow('vmm', 60) }, [
      { name: 'network-ensure', recordBefore: false, run: slow('network', 20) },
      { name: 'forwards-ensure', recordBefore: false, run: slow('forwards', 20) },
    ]);
    await runPipeline(ctx, [step!]);
    // The others ran while the step was still running.
    expect(log).toEqual([
      'vmm began',
      'network began',
      'network ended',
      'forwards began',
      'forwards ended',
      'vmm ended',
    ]);
    expect(events).toEqual([
      'write vmm',
      'start vmm',
      'start network-ensure',
      'done network-ensure',
      'start forwards-ensure',
      'done forwards-ensure',
      'done vmm',
    ]);
  });

  it('a failure alongside is that step’s failure, and the step it ran beside is undone', async () => {
    const { events, ctx } = recorder();
    const undone: string[] = [];
    const steps = withAlongside(
      {
        name: 'vmm',
        run: async () => {
          await pause(20);
        },
        undo: async () => {
          undone.push('vmm');
        },
      },
      [
        {
          name: 'network-ensure',
          recordBefore: false,
          run: async () => {
            throw new Error('RTNETLINK answers: Operation not permitted');
          },
        },
      ],
    );
    const error = await runPipeline(ctx, steps).catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: 'NETWORK_FAILED',
      details: { step: 'network-ensure' },
      message: 'web: network-ensure failed: RTNETLINK answers: Operation not permitted',
    });
    expect(undone).toEqual(['vmm']);
    expect(events).toContain('failed network-ensure');
  });

  it('steps that write or undo are not run alongside: they keep their order before the step', () => {
    const undoable = { name: 'nics-ensure', run: async () => {}, undo: async () => {} };
    const writes = { name: 'forwards-ensure', run: async () => {} };
    const vmm = { name: 'vmm', run: async () => {} };
    expect(withAlongside(vmm, [undoable]).map((s) => s.name)).toEqual(['nics-ensure', 'vmm']);
    expect(withAlongside(vmm, [writes]).map((s) => s.name)).toEqual(['forwards-ensure', 'vmm']);
    expect(withAlongside(vmm, [])).toEqual([vmm]);
  });
});
