import * as z from 'zod';

/** A comma-separated list (empty items dropped), at most `max` characters. */
export const list = (max: number) =>
  z
    .string()
    .max(max)
    .transform((s) =>
      s
        .split(',')
        .map((part) => part.trim())
        .filter((part) => part.length > 0),
    );

/** A yes/no variable: true, 1, yes, on or false, 0, no, off. */
export const bool = z.stringbool({ truthy: ['true', '1', 'yes', 'on'], falsy: ['false', '0', 'no', 'off'] });
