import { ChvApiError } from '@my-hypervisor/chv-client';
import { describe, expect, it } from 'vitest';
import { VmManagerError } from './errors.js';
import { stepError } from './pipeline.js';

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
