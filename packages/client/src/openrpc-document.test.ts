import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { Ajv } from 'ajv';
import draft7MetaSchema from 'ajv/dist/refs/json-schema-draft-07.json' with { type: 'json' };
import { describe, expect, it } from 'vitest';
import { daemonMethodDefinitions } from './methods.js';
import { buildDaemonOpenrpcDocument } from './openrpc-document.js';

// The package declares types only; the schema itself is a runtime export.
const { openrpcDocument: openrpcMetaSchema } = createRequire(import.meta.url)('@open-rpc/meta-schema') as {
  openrpcDocument: Record<string, unknown>;
};

function ajv(): Ajv {
  const instance = new Ajv({ strict: false, logger: false });
  // The meta-schema embeds JSON Schemas by reference to meta.json-schema.tools (a draft-07 dialect).
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
  return instance;
}

describe('openrpc.json', () => {
  const document = buildDaemonOpenrpcDocument();

  it('is the document the code builds (run `pnpm openrpc` after changing a schema)', async () => {
    const shipped: unknown = JSON.parse(await readFile(new URL('../openrpc.json', import.meta.url), 'utf8'));
    expect(shipped).toEqual(JSON.parse(JSON.stringify(document)));
  });

  it('is a valid OpenRPC 1.3 document, and the check has teeth', () => {
    const validate = ajv().compile(openrpcMetaSchema);
    expect(validate(document), JSON.stringify(validate.errors)).toBe(true);
    const broken = structuredClone(document) as unknown as { methods: { params: { schema: object }[] }[] };
    (broken.methods.find((m) => m.params.length > 0)!.params[0]!.schema as { type?: string }).type = 'text';
    expect(validate(broken)).toBe(false);
  });

  it('lists every method with its params; vm.create carries the VM spec schema itself', () => {
    expect(document.methods.map((m) => m.name)).toEqual(Object.keys(daemonMethodDefinitions));
    const create = document.methods.find((m) => m.name === 'vm.create')!;
    const spec = create.params.find((p) => p.name === 'spec')!;
    expect(spec.required).toBe(true);
    expect(Object.keys((spec.schema as { properties: object }).properties)).toEqual(
      expect.arrayContaining(['name', 'cpus', 'memory', 'kernel', 'network', 'restart']),
    );
    const stop = document.methods.find((m) => m.name === 'vm.stop')!;
    expect(stop.params.map((p) => [p.name, p.required])).toEqual([
      ['name', true],
      ['gracefulMs', false],
      ['progress', false],
    ]);
  });
});
