import { AssertionError } from 'node:assert';
import { NetOpsError, type NetOpsErrorCode } from '../errors.js';

function describeValue(value: unknown): string {
  if (NetOpsError.isInstance(value)) return `NetOpsError ${value.code}: ${value.message}`;
  if (value instanceof Error) return `${value.name}: ${value.message}`;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/**
 * Awaits `promise` and asserts that it rejects with a NetOpsError (from any installed copy) whose `code` is `code`
 * (or one of `code`s). Returns the error for further checks. Codes are the API; messages are never compared.
 */
export async function expectNetOpsError(
  promise: PromiseLike<unknown>,
  code: NetOpsErrorCode | readonly NetOpsErrorCode[],
): Promise<NetOpsError> {
  const codes: readonly NetOpsErrorCode[] = typeof code === 'string' ? [code] : code;
  let result: unknown;
  try {
    result = await promise;
  } catch (error) {
    if (NetOpsError.isInstance(error) && codes.includes(error.code)) return error;
    throw new AssertionError({
      message: `expected a NetOpsError ${codes.join(' or ')}, got ${describeValue(error)}`,
      actual: NetOpsError.isInstance(error) ? error.code : error,
      expected: codes.join(' or '),
    });
  }
  throw new AssertionError({
    message: `expected a NetOpsError ${codes.join(' or ')}, but it resolved with ${describeValue(result)}`,
    actual: result,
    expected: codes.join(' or '),
  });
}
