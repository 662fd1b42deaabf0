// Lint for weft (run by .ci/run through `npm run lint`). typescript-eslint's recommended rules, plus the few habits
// the style guide asks for. Formatting (line length, quotes, commas) belongs to Prettier (.prettierrc.json).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'native/build/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      // Unused names are dead code or a bug; a leading underscore marks a deliberately unused parameter.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // `!` is fine where an invariant holds (typed-array slots); the seams avoid it by design, review catches misuse.
      '@typescript-eslint/no-non-null-assertion': 'off',
      // Empty catch blocks are used for best-effort cleanup; they must say why in a comment.
      'no-empty': ['error', { allowEmptyCatch: false }],
      eqeqeq: ['error', 'always', { null: 'ignore' }],
      'no-console': 'off',
    },
  },
  {
    files: ['**/*.mjs', '**/*.js'],
    languageOptions: { globals: globals.node },
  },
  {
    files: ['**/*.test.ts', 'test/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
);
