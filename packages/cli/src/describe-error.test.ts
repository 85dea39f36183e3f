import { ChvApiError } from '@my-hypervisor/chv-client';
import { ClusterError } from '@my-hypervisor/cluster';
import { NetOpsError } from '@my-hypervisor/net-ops';
import { StorageError } from '@my-hypervisor/storage';
import { parseVmSpec, VmManagerError } from '@my-hypervisor/vm-manager';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { debugLines, describeError, exitCodeFor } from './describe-error.js';
import { CliError } from './errors.js';
import { ExitCode } from './exit-codes.js';

describe('exitCodeFor', () => {
  it.each([
    ['CliError USAGE', new CliError('USAGE', 'x'), ExitCode.USAGE],
    ['CliError INVALID_ARGUMENT', new CliError('INVALID_ARGUMENT', 'x'), ExitCode.USAGE],
    ['CliError INTERRUPTED', new CliError('INTERRUPTED', 'x'), ExitCode.INTERRUPTED],
    ['CliError NOT_ROOT', new CliError('NOT_ROOT', 'x'), ExitCode.FAILED],
    ['VmManagerError INVALID_ARGUMENT', new VmManagerError('INVALID_ARGUMENT', 'x'), ExitCode.USAGE],
    ['VmManagerError NOT_FOUND', new VmManagerError('NOT_FOUND', 'x'), ExitCode.FAILED],
    ['VmManagerError ALREADY_EXISTS', new VmManagerError('ALREADY_EXISTS', 'x'), ExitCode.FAILED],
    ['VmManagerError VMM_FAILED', new VmManagerError('VMM_FAILED', 'x'), ExitCode.FAILED],
    [
      'VmManagerError CONFLICT naming a field (found while validating)',
      new VmManagerError('CONFLICT', 'x', { details: { field: 'network.forwards[0].hostPort' } }),
      ExitCode.USAGE,
    ],
    [
      'VmManagerError CONFLICT of a backend step',
      new VmManagerError('CONFLICT', 'x', { details: { vm: 'web', step: 'forwards' } }),
      ExitCode.FAILED,
    ],
    [
      'NetOpsError CONFLICT',
      new NetOpsError('CONFLICT', 'x', { details: { field: 'rule' } }),
      ExitCode.FAILED,
    ],
    ['NetOpsError INVALID_ARGUMENT', new NetOpsError('INVALID_ARGUMENT', 'x'), ExitCode.USAGE],
    ['NetOpsError PERMISSION_DENIED', new NetOpsError('PERMISSION_DENIED', 'x'), ExitCode.FAILED],
    ['StorageError INVALID_ARGUMENT', new StorageError('INVALID_ARGUMENT', 'x'), ExitCode.USAGE],
    ['StorageError START_FAILED', new StorageError('START_FAILED', 'x'), ExitCode.FAILED],
    ['ChvApiError INVALID_ARGUMENT', new ChvApiError('INVALID_ARGUMENT', 'x'), ExitCode.USAGE],
    ['ChvApiError EXITED', new ChvApiError('EXITED', 'x'), ExitCode.FAILED],
    ['a plain Error', new Error('boom'), ExitCode.FAILED],
    ['a string', 'boom', ExitCode.FAILED],
  ])('%s → %i', (_label, error, code) => {
    expect(exitCodeFor(error)).toBe(code);
  });

  it('maps a zod error to 2', () => {
    const result = z.object({ a: z.number() }).safeParse({ a: 'x' });
    expect(result.success).toBe(false);
    expect(exitCodeFor(result.error)).toBe(ExitCode.USAGE);
    expect(describeError(result.error)).toMatchObject({ code: 'INVALID_ARGUMENT', field: 'a', exitCode: 2 });
  });
});

describe('describeError', () => {
  it('reports the field of a spec error', () => {
    let error: unknown;
    try {
      parseVmSpec({ name: 'a', kernel: '/k', memory: 'lots' });
    } catch (e) {
      error = e;
    }
    expect(describeError(error)).toMatchObject({
      source: 'VmManagerError',
      code: 'INVALID_ARGUMENT',
      field: 'memory',
      exitCode: 2,
    });
  });

  it('gives a hint for common failures', () => {
    expect(describeError(new VmManagerError('NOT_FOUND', 'no VM named x')).hint).toMatch(/myhv vm ls/);
    expect(describeError(new NetOpsError('PERMISSION_DENIED', 'denied')).hint).toMatch(/root/);
    expect(describeError(new CliError('FAILED', 'x', { details: { hint: 'do this' } })).hint).toBe('do this');
    const noKvm = new VmManagerError(
      'VMM_FAILED',
      'web: the VMM cannot run guests on this host: KVM is unavailable',
      {
        details: { vm: 'web', step: 'vmm', reason: 'KVM_UNAVAILABLE' },
      },
    );
    expect(describeError(noKvm)).toMatchObject({
      exitCode: 1,
      hint: expect.stringMatching(/\/dev\/kvm.*simulator/),
    });
    expect(describeError(new Error('x'))).toMatchObject({ code: 'UNEXPECTED', hint: null, exitCode: 1 });
  });

  it("reports the cluster's errors by code, told by their marker (the etcd client is not loaded to do it)", () => {
    expect(
      describeError(new ClusterError('INVALID_ARGUMENT', 'name: "a/b" is not a VM name', { field: 'name' })),
    ).toMatchObject({ source: 'ClusterError', code: 'INVALID_ARGUMENT', field: 'name', exitCode: 2 });
    expect(describeError(new ClusterError('NOT_FOUND', 'no VM named x in the cluster'))).toMatchObject({
      source: 'ClusterError',
      exitCode: 1,
      hint: expect.stringMatching(/--cluster .* vm ls/),
    });
    expect(describeError(new ClusterError('UNAVAILABLE', 'etcd did not answer'))).toMatchObject({
      exitCode: 1,
      hint: expect.stringMatching(/majority/),
    });
  });
});

describe('debugLines', () => {
  it('walks the cause chain and includes long messages', () => {
    const inner = new NetOpsError('BACKEND_FAILURE', 'nft failed', {
      details: { command: ['nft', '-f', '-'], exitCode: 1, stderr: 'Error: syntax error' },
    });
    const outer = new VmManagerError('NETWORK_FAILED', 'web: network failed', { cause: inner });
    const text = debugLines(outer).join('\n');
    expect(text).toContain('error: VmManagerError [NETWORK_FAILED]: web: network failed');
    expect(text).toContain('caused by: NetOpsError [BACKEND_FAILURE]: nft failed');
    expect(text).toContain('stderr: Error: syntax error');
  });
});
