import type { ChvErrorCode } from './errors.js';

/**
 * The VMM's error chain from a response body, outermost first, for all three generations:
 * - v47+: a JSON array of strings (`["Error from API","The VM could not boot","VM config is missing"]`);
 * - micro_http's own parse errors: `{ "error": "…" }`;
 * - up to v46: plain text (Rust `Debug` output such as `ApiError(VmBoot(VmMissingConfig))`).
 */
export function parseErrorBody(body: string): string[] {
  const text = body.trim();
  if (text === '') return [];
  if (text.startsWith('[') || text.startsWith('{')) {
    try {
      const parsed: unknown = JSON.parse(text);
      if (Array.isArray(parsed) && parsed.every((m) => typeof m === 'string')) return parsed;
      if (typeof parsed === 'object' && parsed !== null && 'error' in parsed) {
        const error = (parsed as { error: unknown }).error;
        if (typeof error === 'string') return error.split('\n').filter((line) => line.trim() !== '');
      }
    } catch {
      // Not JSON after all: plain text from an old VMM.
    }
  }
  return [text];
}

// Each rule matches both the Display text (v47+) and the Debug variant name (≤ v46) of one error.
const notCreated = /VM is not created|VmNotCreated|VM config is missing|VmMissingConfig/i;
const alreadyCreated = /VM is already created|VmAlreadyCreated/i;
const wrongState =
  /invalid VM state transition|InvalidStateTransition|VM is not running|VmNotRunning|VM is not booted|VmNotBooted|VM is migrating|VmMigrating|VmRestoring|while VM is running|VM is not paused/i;
const conflict = /is not unique|IdentifierNotUnique|Too many vsock|TooManyVsockDevices|already exists/i;
const busy =
  /VcpuPendingRemovedVcpu|pending remov|Too Many Requests|TooManyRequests|Too many open connections/i;
const invalidConfig =
  /Error validating|Failed to validate config|ConfigValidation|Failed to deserialize JSON|SerdeJsonDeserialize|^Bad Request$|^BadRequest$|larger than the limit/i;
const notFound =
  /No device with id|NoDeviceToRemove|Failed to find device corresponding|UnknownDeviceId|^Not Found$|^NotFound$|No disk with id|Could not find the memory zone/i;

/** Endpoints where "already created" means the VM exists and the request is in the wrong state for it. */
const alreadyCreatedIsWrongState = new Set(['vm.boot']);

/**
 * Normalises one error answer into a stable code. The message chain decides where it is specific (it is the
 * only signal before v53, where everything is 500); the status decides otherwise.
 */
export function classifyApiError(
  status: number,
  messages: readonly string[],
  endpoint: string,
): ChvErrorCode {
  const any = (pattern: RegExp) => messages.some((m) => pattern.test(m));
  if (any(notCreated)) return 'NOT_CREATED';
  if (any(alreadyCreated)) return alreadyCreatedIsWrongState.has(endpoint) ? 'WRONG_STATE' : 'CONFLICT';
  if (any(wrongState)) return 'WRONG_STATE';
  if (any(conflict)) return 'CONFLICT';
  if (any(busy)) return 'BUSY';
  if (any(invalidConfig)) return 'INVALID_CONFIG';
  if (any(notFound)) return 'NOT_FOUND';
  switch (status) {
    case 400:
    case 413:
      return 'INVALID_CONFIG';
    case 404:
      return 'NOT_FOUND';
    case 409:
      return 'CONFLICT';
    case 429:
    case 503:
      return 'BUSY';
    default:
      return 'INTERNAL';
  }
}
