/* dm-mss: DM_MSS: authenticates new secondary devices and delivers the DM agent package (J.1020 §9,
 * Figure 4 steps 1-4). */
#include "opendm/daemon.h"
#include "dm_mss.h"

int main(int argc, char **argv)
{
	return daemon_main(argc, argv, &dm_mss_role);
}
