import { describe, expect, expectTypeOf, it } from 'vitest';
import type { Lenient } from './lenient.js';
import { type DeviceNode, type VmInfo, vmInfoReader } from './responses.js';

// Cloud Hypervisor's `Resource` enum serialises as `{ Variant: data }`, and the data may be a scalar.
const deviceTree = {
  _serial: { id: '_serial', resources: [{ LegacyIrq: 4 }], children: [], pci_bdf: null },
  __rtc: {
    id: '__rtc',
    resources: [{ MmioAddressRange: { base: 4269801472, size: 4096 } }, { LegacyIrq: 5 }],
    children: [],
    pci_bdf: null,
  },
  _net1: {
    id: '_net1',
    resources: [{ PciBar: { index: 0, base: 1, size: 2 } }, { MacAddress: '12:34:56:78:90:ab' }],
    children: [],
    pci_bdf: '0000:00:03.0',
  },
};

describe('Lenient', () => {
  it('types a vm.info whose device tree holds scalar resources (LegacyIrq: 5) as a VmInfo', () => {
    // Compiled by the package typecheck: before the fix `5` was not assignable to the resource's value type.
    const info: VmInfo = {
      config: { payload: { kernel: '/k' } },
      state: 'Running',
      device_tree: deviceTree,
    };
    const node: DeviceNode = deviceTree.__rtc;
    expectTypeOf(deviceTree).toExtend<NonNullable<VmInfo['device_tree']>>();
    expectTypeOf<{ LegacyIrq: number }>().toExtend<NonNullable<DeviceNode['resources']>[number]>();
    expect(vmInfoReader.parse(info).device_tree?.__rtc?.resources).toEqual(node.resources);
  });

  it('keeps unknown and scalars as they are, and objects open and nullable', () => {
    expectTypeOf<Lenient<unknown>>().toEqualTypeOf<unknown>();
    expectTypeOf<Lenient<number>>().toEqualTypeOf<number>();
    expectTypeOf<Lenient<'Running' | 'Paused'>>().toEqualTypeOf<'Running' | 'Paused'>();
    expectTypeOf<Lenient<{ a: unknown }>['a']>().toEqualTypeOf<unknown>();
    expectTypeOf<Lenient<Record<string, unknown>>[string]>().toEqualTypeOf<unknown>();
    expectTypeOf<Lenient<{ a?: string }>['a']>().toEqualTypeOf<string | null | undefined>();
    expectTypeOf<Lenient<{ a: { b?: number } }>['a']['b']>().toEqualTypeOf<number | null | undefined>();
    expectTypeOf<Lenient<{ a: string }>>().toHaveProperty('extra').toEqualTypeOf<unknown>();
  });
});
