/* dm-iss: DM_ISS: personalizes DM agents with a DM identifier and an X.509 certificate (J.1020 §9,
 * Figure 4 steps 7-10). */
#include "opendm/daemon.h"
#include "dm_iss.h"

int main(int argc, char **argv)
{
	return daemon_main(argc, argv, &dm_iss_role);
}
