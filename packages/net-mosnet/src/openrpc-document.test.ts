import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { isIPv4 } from '@my-hypervisor/net-ops';
import { Ajv } from 'ajv';
import draft7MetaSchema from 'ajv/dist/refs/json-schema-draft-07.json' with { type: 'json' };
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { mosnetMethodDefinition } from './methods.js';
import { MosnetClient } from './mosnet-client.js';
import { MosnetOps } from './mosnet-ops.js';
import { documentForCapabilities, openrpcDocument } from './openrpc-document.js';

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
