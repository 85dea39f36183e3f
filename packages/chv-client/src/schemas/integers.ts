import { z } from 'zod';

// Integer formats of the OpenAPI description, checked on what we send so a typo fails here, not in the VMM.
export const int = () => z.int();
export const int8 = () => z.int().min(-128).max(127);
export const int16 = () => z.int().min(-32_768).max(32_767);
export const int32 = () => z.int().min(-2_147_483_648).max(2_147_483_647);
export const int64 = () => z.int();
export const uint8 = () => z.int().min(0).max(255);
export const uint16 = () => z.int().min(0).max(65_535);
export const uint32 = () => z.int().min(0).max(4_294_967_295);
