import { commonError } from './common.errors.ts';

/**
 * `If-Match: "3"` (or `W/"3"`, a list, or `*`) against an object's version; absent means
 * unconditional. A stale tag is `409 version_conflict` with the current version in the details.
 */
export function checkIfMatch(ifMatch: string | undefined, version: number): void {
  if (ifMatch === undefined || ifMatch.trim() === '*') return;
  const tags = ifMatch.split(',').map((t) => t.trim().replace(/^W\//, ''));
  if (!tags.includes(`"${version}"`))
    throw commonError('version_conflict', { details: { current_version: version } });
}
