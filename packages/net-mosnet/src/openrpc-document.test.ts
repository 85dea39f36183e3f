import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { isIPv4 } from '@my-hypervisor/net-ops';
import { hostileInterfaceNames } from '@my-hypervisor/net-ops/testing';
import { Ajv } from 'ajv';
import draft7MetaSchema from 'ajv/dist/refs/json-schema-draft-07.json' with { type: 'json' };
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type MosnetMethodDefinition, mosnetMethodDefinition, mosnetMethods } from './methods.js';
import { MosnetClient } from './mosnet-client.js';
import { MosnetOps } from './mosnet-ops.js';
import {
  buildOpenrpcDocument,
  documentForCapabilities,
  type JsonSchema,
  openrpcDocument,
} from './openrpc-document.js';

// The package declares types only; the schema itself is a runtime export.
const { openrpcDocument: openrpcMetaSchema } = createRequire(import.meta.url)('@open-rpc/meta-schema') as {
  openrpcDocument: Record<string, unknown>;
};

function ajv(): Ajv {
  const instance = new Ajv({ strict: false, logger: false });
  // The OpenRPC meta-schema embeds JSON Schemas by reference to meta.json-schema.tools (a draft-07 dialect);
  // draft-07's own meta-schema stands in for it, plus the one definition the meta-schema points into.
  for (const $id of ['https://meta.json-schema.tools', 'https://meta.json-schema.tools/']) {
    instance.addMetaSchema({
      ...draft7MetaSchema,
      $id,
      definitions: {
        ...draft7MetaSchema.definitions,
        JSONSchemaObject: { properties: { $ref: { type: 'string', format: 'uri-reference' } } },
      },
    });
  }
  instance.addFormat('ipv4', isIPv4);
  return instance;
}

/** A client that answers from the contract's own schemas and records what MosnetOps asks. */
class RecordingClient extends MosnetClient {
  readonly calls: { method: string; params: Readonly<Record<string, unknown>> }[] = [];

  override async call(method: string, params: Readonly<Record<string, unknown>> = {}): Promise<unknown> {
    this.calls.push({ method, params });
    if (method === 'rpc.discover') return openrpcDocument;
    const answers: Record<string, unknown> = {
      'mosnet.bridge.add': { name: params.name, created: true },
      'mosnet.vm.create_tap': { name: params.name, created: true },
      'mosnet.vm.delete_tap': { name: params.name, existed: true },
      'mosnet.nat.add_forward': { created: true },
      'mosnet.nat.remove_forward': { existed: true },
      'mosnet.bridge.list_ports': { ports: [] },
      'mosnet.nat.list_forwards': { forwards: [] },
    };
    return answers[method];
  }
}

/** Every operation of MosnetOps, with every optional field set, through a recording client. */
async function recordEveryCall(): Promise<RecordingClient['calls']> {
  const client = new RecordingClient({ socketPath: '/nonexistent/mosnet.sock' });
  const ops = new MosnetOps({ client });
  await ops.discover();
  const rule = {
    protocol: 'udp',
    hostPort: 5353,
    guestIp: '10.62.0.2',
    guestPort: 53,
    hostIp: '192.0.2.1',
    owner: 'vm-1',
  } as const;
  await ops.ensureBridge({ name: 'br0', address: '10.62.0.1/24', mtu: 9000, ipv6Address: 'fd00::1/64' });
  await ops.listBridgePorts('br0');
  await ops.createTap({
    name: 'tap0',
    bridge: 'br0',
    mtu: 9000,
    multiQueue: true,
    owner: { uid: 1, gid: 2 },
  });
  await ops.addToBridge('tap0', 'br0');
  await ops.bringUp('tap0');
  await ops.deleteTap('tap0');
  await ops.addPortForward(rule);
  await ops.removePortForward(rule);
  await ops.listPortForwards();
  return client.calls.filter((call) => call.method !== 'rpc.discover');
}

describe('openrpc.json', () => {
  it('is the document the code builds (run `pnpm openrpc` after changing a schema)', async () => {
    const shipped: unknown = JSON.parse(await readFile(new URL('../openrpc.json', import.meta.url), 'utf8'));
    expect(shipped).toEqual(JSON.parse(JSON.stringify(openrpcDocument)));
  });

  it('is a valid OpenRPC 1.3 document per the OpenRPC meta-schema', () => {
    const validate = ajv().compile(openrpcMetaSchema);
    expect(validate(openrpcDocument), JSON.stringify(validate.errors)).toBe(true);
    expect(openrpcDocument.openrpc).toBe('1.3.2');
    // The check has teeth: a malformed param schema fails it.
    const broken = structuredClone(openrpcDocument) as unknown as {
      methods: { params: { schema: Record<string, unknown> }[] }[];
    };
    broken.methods[0]!.params[0]!.schema.type = 'text';
    expect(validate(broken)).toBe(false);
  });

  it('names exactly the methods MosnetOps calls, and every param it sends', async () => {
    const calls = await recordEveryCall();
    const called = [...new Set(calls.map((call) => call.method))].sort();
    expect(called).toEqual(openrpcDocument.methods.map((method) => method.name).sort());
    for (const method of openrpcDocument.methods) {
      const sent = new Set(
        calls.filter((call) => call.method === method.name).flatMap((c) => Object.keys(c.params)),
      );
      expect([...sent].sort(), method.name).toEqual(method.params.map((param) => param.name).sort());
    }
  });

  it('accepts every call MosnetOps makes against the param schemas it declares', async () => {
    const validator = ajv();
    for (const call of await recordEveryCall()) {
      const method = openrpcDocument.methods.find((m) => m.name === call.method)!;
      const validate = validator.compile({
        type: 'object',
        properties: Object.fromEntries(method.params.map((param) => [param.name, param.schema])),
        required: method.params.filter((param) => param.required).map((param) => param.name),
        additionalProperties: false,
      });
      expect(validate(call.params), `${call.method}: ${JSON.stringify(validate.errors)}`).toBe(true);
    }
  });

  it('declares each param as the zod schema the client and server validate with', () => {
    for (const method of openrpcDocument.methods) {
      const definition = mosnetMethodDefinition(method.name)!;
      const shape = definition.params.shape as Record<string, z.ZodType>;
      expect(
        method.params.map((param) => param.name),
        method.name,
      ).toEqual(Object.keys(shape));
      for (const param of method.params) {
        const field = shape[param.name]!;
        expect(param.required, `${method.name} ${param.name}`).toBe(!field.safeParse(undefined).success);
        const {
          $schema: _,
          description: __,
          ...expected
        } = z.toJSONSchema(field, {
          target: 'draft-7',
          io: 'input',
        }) as Record<string, unknown>;
        expect(param.schema, `${method.name} ${param.name}`).toEqual(expected);
      }
    }
  });

  it('lists the error codes that map to NetOpsError codes on every method', () => {
    for (const method of openrpcDocument.methods) {
      const codes = method.errors.map((error) => error.code);
      expect(codes).toContain(-32602);
      expect(codes).toContain(-32000);
      expect(codes.every((code) => code <= -32000 && code >= -32768)).toBe(true);
      if (method['x-optional']) expect(codes).toContain(-32601);
    }
  });
});

describe('documentForCapabilities', () => {
  it('keeps everything for full capabilities and drops what the ops cannot do', () => {
    const full = {
      listBridgePorts: true,
      listPortForwards: true,
      atomicTap: false,
      multiQueue: true,
      tapOwner: true,
      ipv6: true,
    };
    expect(documentForCapabilities(full)).toEqual(openrpcDocument);
    const none = documentForCapabilities({
      ...full,
      listBridgePorts: false,
      listPortForwards: false,
      multiQueue: false,
      tapOwner: false,
      ipv6: false,
    });
    expect(none.methods.map((method) => method.name)).toEqual([
      'mosnet.bridge.add',
      'mosnet.vm.create_tap',
      'mosnet.vm.delete_tap',
      'mosnet.nat.add_forward',
      'mosnet.nat.remove_forward',
    ]);
    const params = (name: string) =>
      none.methods.find((method) => method.name === name)?.params.map((param) => param.name);
    expect(params('mosnet.vm.create_tap')).toEqual(['name', 'bridge', 'mtu']);
    expect(params('mosnet.bridge.add')).toEqual(['name', 'address', 'mtu']);
  });
});

/**
 * The verdict of a JSON Schema on `value`, keyword by keyword as a validator of the document would reach it:
 * patterns compiled as ECMA-262 with the `u` flag, `format: ipv4` as the dotted quad. A keyword it does not know
 * fails the test rather than being skipped.
 */
function jsonSchemaAccepts(schema: JsonSchema, value: unknown): boolean {
  const isObject = typeof value === 'object' && value !== null && !Array.isArray(value);
  const object = value as Record<string, unknown>;
  const properties = (schema.properties ?? {}) as Record<string, JsonSchema>;
  return Object.entries(schema).every(([keyword, expected]) => {
    switch (keyword) {
      case 'description':
        return true;
      case 'type':
        return expected === 'integer'
          ? Number.isInteger(value)
          : expected === 'object'
            ? isObject
            : typeof value === expected;
      case 'pattern':
        return typeof value !== 'string' || new RegExp(expected as string, 'u').test(value);
      case 'format':
        if (expected !== 'ipv4') throw new Error(`no check for format ${String(expected)}`);
        return typeof value !== 'string' || isIPv4(value);
      case 'minLength':
        return typeof value !== 'string' || [...value].length >= (expected as number);
      case 'maxLength':
        return typeof value !== 'string' || [...value].length <= (expected as number);
      case 'minimum':
        return typeof value !== 'number' || value >= (expected as number);
      case 'maximum':
        return typeof value !== 'number' || value <= (expected as number);
      case 'enum':
        return (expected as unknown[]).includes(value);
      case 'properties':
        return (
          !isObject ||
          Object.entries(properties).every(
            ([key, property]) => !(key in object) || jsonSchemaAccepts(property, object[key]),
          )
        );
      case 'required':
        return !isObject || (expected as string[]).every((key) => key in object);
      case 'additionalProperties':
        return !isObject || expected !== false || Object.keys(object).every((key) => key in properties);
      default:
        throw new Error(`jsonSchemaAccepts does not know the keyword ${keyword}`);
    }
  });
}

/** Params every method accepts, to which one value under test is added. */
const validParams: Readonly<Record<string, Readonly<Record<string, unknown>>>> = {
  [mosnetMethods.bridgeAdd]: { name: 'br0', address: '10.62.0.1/24' },
  [mosnetMethods.createTap]: { name: 'tap0', bridge: 'br0' },
  [mosnetMethods.deleteTap]: { name: 'tap0' },
  [mosnetMethods.addForward]: { protocol: 'tcp', host_port: 8080, guest_ip: '10.62.0.2', guest_port: 80 },
  [mosnetMethods.removeForward]: { protocol: 'tcp', host_port: 8080, guest_ip: '10.62.0.2', guest_port: 80 },
  [mosnetMethods.listBridgePorts]: { bridge: 'br0' },
  [mosnetMethods.listForwards]: {},
};

/** What the server does with `value` as `param` of `method`: parse the params with the method's zod schema. */
function serverAccepts(definition: MosnetMethodDefinition, param: string, value: unknown): boolean {
  return definition.params.safeParse({ ...validParams[definition.name], [param]: value }).success;
}

/** What the document says of the same: the param's JSON Schema. */
function documentAccepts(method: string, param: string, value: unknown): boolean {
  const descriptor = openrpcDocument.methods
    .find((m) => m.name === method)
    ?.params.find((p) => p.name === param);
  if (!descriptor) throw new Error(`${method} has no param ${param} in the document`);
  return jsonSchemaAccepts(descriptor.schema, value);
}

// [method, param, values the server accepts, values it refuses]
const verdictTable: readonly [string, string, readonly unknown[], readonly unknown[]][] = [
  [
    mosnetMethods.bridgeAdd,
    'ipv6_address',
    [
      'fd00::1/64',
      '4a1:2b3::1/64',
      '2001:DB8:0:0:0:0:0:1/128',
      '2001:db8::/32',
      '::/0',
      '::1/128',
      'fe80::/10',
      '1:2:3:4:5:6:7::/112',
      '::2:3:4:5:6:7:8/64',
      '1::8/64',
      '::ffff:192.0.2.1/120',
      '64:ff9b::192.0.2.33/96',
      '1:2:3:4:5:6:192.0.2.1/64',
      '1:2:3:4:5::192.0.2.1/64',
    ],
    [
      '10.62.0.1/24',
      ':/64',
      ':::/64',
      '::::/64',
      ':1::/64',
      '1::2::3/64',
      '1:2:3:4:5:6:7:8:9/64',
      '1:2:3:4:5:6:7:8::/64',
      '1:2:3:4:5:6:7/64',
      '12345::/64',
      'fd00::g/64',
      'fd00::1/129',
      'fd00::1/064',
      'fd00::1',
      'fd00::1/',
      '::ffff:1.2.3/96',
      '::ffff:256.1.1.1/96',
      '::ffff:01.2.3.4/96',
      '1:2:3:4:5:6::1.2.3.4/64',
      '1.2.3.4::/64',
      ' fd00::1/64',
      'fd00::1/64\n',
      '',
      6,
    ],
  ],
  [
    mosnetMethods.bridgeAdd,
    'address',
    ['10.62.0.1/24', '0.0.0.0/0', '255.255.255.255/32'],
    ['10.62.0.1/33', '10.62.0.01/24', '256.0.0.1/24', '10.62.0.1', 'fd00::1/64', '10.62.0.1/24 '],
  ],
  [
    mosnetMethods.bridgeAdd,
    'name',
    ['br0', 'tap-1', 'a.b_c', 'kittap012345678', 'x', 'allx', 'default0', '...'],
    [
      ...hostileInterfaceNames,
      '',
      '-x',
      '.',
      '..',
      'all',
      'default',
      'x'.repeat(16),
      'tæp',
      '😀',
      'a\u2028b',
    ],
  ],
  [mosnetMethods.bridgeAdd, 'mtu', [68, 1500, 65535], [67, 65536, 1500.5, '1500']],
  [mosnetMethods.createTap, 'bridge', ['br0'], ['all', 'br 0', 'b'.repeat(16)]],
  [
    mosnetMethods.createTap,
    'owner',
    [
      { uid: 0, gid: 0 },
      { uid: 4_294_967_294, gid: 1 },
    ],
    [{ uid: -1, gid: 0 }, { uid: 4_294_967_295, gid: 0 }, { uid: 1 }, { uid: 1, gid: 1, mode: 1 }, 'root'],
  ],
  [
    mosnetMethods.addForward,
    'guest_ip',
    ['10.62.0.2', '0.0.0.0', '255.255.255.255'],
    ['10.62.0.256', '10.62.0', '010.62.0.2', '::1', '10.62.0.2/32'],
  ],
  [mosnetMethods.addForward, 'host_port', [1, 65535], [0, 65536, 80.5]],
  [mosnetMethods.addForward, 'protocol', ['tcp', 'udp'], ['sctp', 'TCP']],
  [
    mosnetMethods.addForward,
    'owner',
    ['vm-1', 'vm:1.x_y-z', 'o'.repeat(128)],
    ['', 'o'.repeat(129), 'vm 1', 'vm/1', 'vm\n1'],
  ],
];

describe('the document’s param schemas and the server’s zod schemas', () => {
  it.each(verdictTable)('%s %s: accept and refuse the same values', (method, param, good, bad) => {
    const definition = mosnetMethodDefinition(method)!;
    for (const [values, expected] of [
      [good, true],
      [bad, false],
    ] as const) {
      for (const value of values) {
        const label = `${method} ${param} ${JSON.stringify(value)}`;
        expect(serverAccepts(definition, param, value), `server: ${label}`).toBe(expected);
        expect(documentAccepts(method, param, value), `document: ${label}`).toBe(expected);
      }
    }
  });

  it('agree on every value of the table for every string param of every method', () => {
    const values = [...new Set(verdictTable.flatMap(([, , good, bad]) => [...good, ...bad]))];
    let strings = 0;
    for (const method of openrpcDocument.methods) {
      const definition = mosnetMethodDefinition(method.name)!;
      for (const param of method.params) {
        if (param.schema.type !== 'string') continue;
        strings++;
        for (const value of values) {
          expect(
            documentAccepts(method.name, param.name, value),
            `${method.name} ${param.name} ${JSON.stringify(value)}`,
          ).toBe(serverAccepts(definition, param.name, value));
        }
      }
    }
    expect(strings).toBeGreaterThan(10);
  });

  it('compiles every pattern in the document as a Unicode regular expression', () => {
    const patterns: string[] = [];
    JSON.stringify(openrpcDocument, (key, value: unknown) => {
      if (key === 'pattern' && typeof value === 'string') patterns.push(value);
      return value;
    });
    expect(patterns.length).toBeGreaterThan(10);
    for (const pattern of patterns) expect(() => new RegExp(pattern, 'u'), pattern).not.toThrow();
  });

  it('says so in the description when a zod schema checks more than JSON Schema can express', () => {
    // The shipped schemas need no such note: everything the server checks is in them.
    expect(JSON.stringify(openrpcDocument)).not.toContain('cannot express');
    const definition = mosnetMethodDefinition(mosnetMethods.deleteTap)!;
    const refined = {
      ...definition,
      params: z.strictObject({
        name: z
          .string()
          .regex(/^[a-z]+$/)
          .refine((name) => name !== 'lo', 'must not be lo')
          .describe('A name.'),
        label: z
          .string()
          .regex(/^[a-z]+$/i)
          .optional(),
      }),
    };
    const [name, label] = buildOpenrpcDocument([refined]).methods[0]!.params;
    expect(name).toMatchObject({ schema: { pattern: '^[a-z]+$' }, required: true });
    expect(name?.description).toMatch(/^A name\. .*cannot express.*must not be lo\.$/);
    expect(label?.description).toMatch(/cannot express.*flags "i"/);
  });
});
