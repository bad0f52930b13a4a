import * as z from 'zod';

/**
 * A credential a CLI relay reads from its environment and sends in a header or form (`nexus mcp`,
 * `nexus proxy`): printable ASCII without spaces once trimmed (a secret file's final newline is
 * fine). A line break inside one would fail every request with an error that quotes the header,
 * and that error reaches stderr and, from `nexus mcp`, the MCP client (the model's context).
 */
export const credentialVar = (max: number) =>
  z
    .string()
    .trim()
    .min(1)
    .max(max)
    .regex(/^[!-~]*$/, 'printable ASCII without spaces or line breaks')
    .optional();
