import { describe, expect, it } from 'vitest';
import { classifyApiError, parseErrorBody } from './error-classify.js';
import type { ChvErrorCode } from './errors.js';

describe('parseErrorBody', () => {
  it('reads the three generations and micro_http parse errors', () => {
    expect(parseErrorBody('ApiError(VmBoot(VmMissingConfig))')).toEqual([
      'ApiError(VmBoot(VmMissingConfig))',
    ]);
    expect(parseErrorBody('["Error from API","The VM could not boot","VM config is missing"]')).toEqual([
      'Error from API',
      'The VM could not boot',
      'VM config is missing',
    ]);
    // micro_http puts a raw newline inside its JSON string: not valid JSON, kept as text.
    const sizeError =
      '{ "error": "Request payload with size 5 is larger than the limit of 4 allowed by server.\nAll previous unanswered requests will be dropped." }';
    expect(parseErrorBody(sizeError)).toEqual([sizeError]);
    expect(parseErrorBody('{"error":"Invalid header."}')).toEqual(['Invalid header.']);
    expect(parseErrorBody('')).toEqual([]);
    expect(parseErrorBody('[1,2]')).toEqual(['[1,2]']);
  });
});

describe('classifyApiError', () => {
  const cases: [string, number, string, string, ChvErrorCode][] = [
    // [generation, status, body, endpoint, code]
    ['v46', 500, 'ApiError(VmBoot(VmMissingConfig))', 'vm.boot', 'NOT_CREATED'],
    [
      'v50',
      500,
      '["Error from API","The VM could not boot","VM config is missing"]',
      'vm.boot',
      'NOT_CREATED',
    ],
    [
      'v53',
      404,
      '["Error from API","The VM could not boot","VM config is missing"]',
      'vm.boot',
      'NOT_CREATED',
    ],
    ['v46', 500, 'ApiError(VmInfo(VmNotCreated))', 'vm.info', 'NOT_CREATED'],
    [
      'v53',
      404,
      '["Error from API","The VM info is not available","VM is not created"]',
      'vm.info',
      'NOT_CREATED',
    ],
    ['v46', 500, 'ApiError(VmCreate(VmAlreadyCreated))', 'vm.create', 'CONFLICT'],
    [
      'v50',
      500,
      '["Error from API","The VM could not be created","VM is already created"]',
      'vm.create',
      'CONFLICT',
    ],
    [
      'v50',
      500,
      '["Error from API","The VM could not boot","VM is already created"]',
      'vm.boot',
      'WRONG_STATE',
    ],
    ['v46', 500, 'ApiError(VmPause(VmNotRunning))', 'vm.pause', 'WRONG_STATE'],
    [
      'v53',
      500,
      '["Error from API","The VM could not resume","invalid VM state transition: Running to Running"]',
      'vm.resume',
      'WRONG_STATE',
    ],
    ['v46', 500, 'ApiError(VmResume(InvalidStateTransition(Running, Running)))', 'vm.resume', 'WRONG_STATE'],
    [
      'v50',
      500,
      '["Error from API","The disk could not be added to the VM","Error validating configuration","Identifier d is not unique"]',
      'vm.add-disk',
      'CONFLICT',
    ],
    [
      'v53',
      409,
      '["Error from API","The disk could not be added to the VM","Error validating configuration","Identifier d is not unique"]',
      'vm.add-disk',
      'CONFLICT',
    ],
    ['v53', 409, '["Error from API","Something new"]', 'vm.add-net', 'CONFLICT'],
    [
      'v50',
      500,
      '["Error from API","The VM could not boot","Error validating configuration","Using vhost-user requires using shared memory or huge pages"]',
      'vm.boot',
      'INVALID_CONFIG',
    ],
    ['v53', 400, '["Failed to deserialize JSON","missing field `payload`"]', 'vm.create', 'INVALID_CONFIG'],
    [
      'v46',
      400,
      'SerdeJsonDeserialize(Error("missing field `payload`", line: 1, column: 2))',
      'vm.create',
      'INVALID_CONFIG',
    ],
    ['v50', 400, '["Bad Request"]', 'vm.boot', 'INVALID_CONFIG'],
    ['any', 400, '', 'vm.create', 'INVALID_CONFIG'],
    [
      'v50',
      500,
      '["Error from API","The device could not be removed from the VM","No device with id \\"x\\" to remove"]',
      'vm.remove-device',
      'NOT_FOUND',
    ],
    [
      'v53 (recorded: a running VM asks its device manager)',
      500,
      '["Error from API","The device could not be removed from the VM","Error from device manager","Failed to find device corresponding to the given identifier: hot"]',
      'vm.remove-device',
      'NOT_FOUND',
    ],
    ['v50', 404, '["Not Found"]', 'vm.resize-disk', 'NOT_FOUND'],
    ['v46', 404, 'NotFound', 'vm.resize-disk', 'NOT_FOUND'],
    ['v53', 429, '["Too Many Requests"]', 'vm.resize', 'BUSY'],
    [
      'v50',
      500,
      '["Error from API","The VM could not be resized","Error from CPU manager","VcpuPendingRemovedVcpu"]',
      'vm.resize',
      'BUSY',
    ],
    [
      'v50',
      500,
      '["Error from API","The VM could not boot","Error from device manager","Cannot create virtio-net device","Failed to open taps","Error related to the multiqueue support (no support TAP side)"]',
      'vm.boot',
      'INTERNAL',
    ],
    ['v46', 500, 'ApiError(VmBoot(KernelFile(Os { code: 2 })))', 'vm.boot', 'INTERNAL'],
  ];

  it.each(cases)('%s %i %s (%s) → %s', (_generation, status, body, endpoint, code) => {
    expect(classifyApiError(status, parseErrorBody(body), endpoint)).toBe(code);
  });
});
