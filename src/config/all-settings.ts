/**
 * Imports the settings of every module so that the registry is complete before configuration is
 * loaded (unknown names are refused, so a missing import here would refuse a valid setting).
 * Each module adds one line.
 */
import '../store/settings';
import '../nonce/settings';
import '../log/settings';
import '../kbm/settings';
import '../http/settings';
import '../attest/settings';
import '../policy/settings';
import '../kds/settings';
import '../snp/settings';
import '../pcs/settings';
import '../tdx/settings';
import '../cert/settings';
import '../gpu/settings';

/**
 * SETTINGS_ORDER: the owners in the order of the imports above. Generated documents list settings
 * in this order, whatever order a process happened to import the modules in (a test importing
 * one module's settings first must not reorder the reference).
 */
export const SETTINGS_ORDER: readonly string[] = ['store', 'nonce', 'log', 'kbm', 'http', 'attest', 'policy', 'kds', 'snp', 'pcs', 'tdx', 'cert', 'nvidia'];
