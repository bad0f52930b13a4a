/**
 * One page of a keyset listing from rows fetched with `limit + 1`: the extra row only says that
 * more follow, and the next page starts after the last row kept (`cursorOf` it). Null on the last.
 */
export function keysetPage<R>(
  rows: readonly R[],
  limit: number,
  cursorOf: (last: R) => string,
): { page: R[]; next_cursor: string | null } {
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return { page, next_cursor: rows.length > limit && last !== undefined ? cursorOf(last) : null };
}
