/** Where things are in a dvfs repository (no code: cheap to import from anywhere). */
export const META_DIR = '.dvfs';
export const META_FILE = 'repo.json';
export const TREE_DIR = 'tree';
export const REPO_FORMAT = 1;
