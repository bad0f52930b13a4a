/** The console's address is its fragment: `#/page/id?filters`. */

/** The path part of the fragment, without `#/` and without its query. */
export const hashPath = (): string => location.hash.replace(/^#\/?/, '').split('?')[0] ?? '';

/** The query part of the fragment (`#/connections?status=active`). */
export const hashQuery = (): URLSearchParams => new URLSearchParams(location.hash.split('?')[1] ?? '');
