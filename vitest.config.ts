import { defineConfig } from 'vitest/config';

// Three tiers (see ../shared/STYLE.md "Tests"): unit tests beside the code, in-process simulations in test/sim,
// real daemons in network namespaces in test/netns (root only).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: [
            '{router,gossip,crypto,ipam,cli,api,daemon,runtime,config,netdev,native,dns,plugin,cni}/**/*.test.ts',
            'test/*.test.ts',
            'test/fuzz/**/*.test.ts',
          ],
          testTimeout: 30_000,
        },
      },
      {
        test: { name: 'sim', include: ['test/sim/**/*.test.ts'], testTimeout: 120_000 },
      },
      {
        test: {
          name: 'netns',
          include: ['test/netns/**/*.test.ts'],
          testTimeout: 180_000,
          hookTimeout: 120_000,
          // Real daemons on 2 shared cores: run netns files one at a time.
          fileParallelism: false,
        },
      },
    ],
  },
});
