import { defineErrors } from '../../errors/nexus-error.ts';

export const catalogErrors = defineErrors({
  catalog_entry_not_found: {
    status: 404,
    message: 'The provider catalogue has no entry with that key (GET /catalog lists them).',
  },
  unknown_template: {
    status: 400,
    message:
      'profile.template names no entry of the provider catalogue (GET /catalog lists them); details.template is the key given.',
  },
});
