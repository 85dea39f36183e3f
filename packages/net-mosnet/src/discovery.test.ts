import { describe, expect, it } from 'vitest';
import { defaultMosnetCapabilities, discoveryFromDocument } from './discovery.js';
import { openrpcDocument } from './openrpc-document.js';

describe('discoveryFromDocument', () => {
  it('turns on everything our own document offers', () => {
    const discovery = discoveryFromDocument(openrpcDocument);
    expect(discovery.capabilities).toEqual({
      ...defaultMosnetCapabilities,
      listBridgePorts: true,
      listPortForwards: true,
    });
    expect(discovery.methods.has('mosnet.nat.list_forwards')).toBe(true);
  });

  it('reads params given by reference to components.contentDescriptors', () => {
    const document = {
      openrpc: '1.2.6',
      methods: [
        {
          name: 'mosnet.vm.create_tap',
          params: [{ name: 'name' }, { $ref: '#/components/contentDescriptors/MQ' }],
        },
        { name: 'mosnet.bridge.add', params: [{ $ref: '#/components/contentDescriptors/Missing' }] },
        { $ref: '#/components/methods/whatever' },
      ],
      components: { contentDescriptors: { MQ: { name: 'multi_queue', schema: {} } } },
    };
    expect(discoveryFromDocument(document).capabilities).toEqual({
      listBridgePorts: false,
      listPortForwards: false,
      atomicTap: true,
      multiQueue: true,
      tapOwner: false,
      ipv6: false,
    });
  });

  it('rejects an answer that is not an OpenRPC document with BACKEND_FAILURE', () => {
    for (const answer of [null, 'doc', [], { methods: 'no' }]) {
      expect(() => discoveryFromDocument(answer)).toThrow(
        expect.objectContaining({ code: 'BACKEND_FAILURE' }),
      );
    }
  });
});
