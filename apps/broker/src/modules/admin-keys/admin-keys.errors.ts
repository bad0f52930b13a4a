import { defineErrors } from '../../errors/nexus-error.ts';

export const adminKeyErrors = defineErrors({
  admin_key_not_found: { status: 404, message: 'No live admin key with that id or name.' },
  admin_key_name_taken: { status: 409, message: 'A live admin key already has that name.' },
  admin_key_limit_reached: {
    status: 409,
    message: 'At most 1000 admin keys may be live at once: revoke the ones no longer used.',
  },
});
