import { defineErrors } from '../../errors/nexus-error.ts';

export const auditErrors = defineErrors({
  invalid_cursor: {
    status: 400,
    message: 'The cursor is not one this broker issued; start again without it.',
  },
});
