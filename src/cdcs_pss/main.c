/* cdcs-pss: CDCS_PSS: entitlement policy, deciding which CA/DRM client software a device gets
 * (J.1020 §10, Figure 5 steps 1-6 and 20). */
#include "opendm/daemon.h"
#include "cdcs_pss.h"

int main(int argc, char **argv)
{
	return daemon_main(argc, argv, &cdcs_pss_role);
}
