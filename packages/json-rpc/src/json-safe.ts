/**
 * The entries of `details` as plain JSON, for the `data` of a JSON-RPC error: a value JSON cannot carry (a bigint,
 * a cycle) becomes its `String()` rather than costing the whole answer; one that JSON drops (a function) is left out.
 */
export function jsonSafeRecord(details: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(details)) {
    try {
      const text = JSON.stringify(value);
      if (text !== undefined) out[key] = JSON.parse(text);
    } catch {
      out[key] = String(value);
    }
  }
  return out;
}
