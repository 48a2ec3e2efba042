/* cdcs-iss: CDCS_ISS: personalization tickets and per-device CDCS personalization (J.1020 §10,
 * Figure 5 steps 11-12 and 15-20). */
#include "opendm/daemon.h"
#include "cdcs_iss.h"

int main(int argc, char **argv)
{
	return daemon_main(argc, argv, &cdcs_iss_role);
}
