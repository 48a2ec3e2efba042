/* cdcs-mss: CDCS_MSS: the CDCS catalogue, download tickets and resumable image delivery (J.1020
 * §10, Figure 5 steps 5 and 8-13). */
#include "opendm/daemon.h"
#include "cdcs_mss.h"

int main(int argc, char **argv)
{
	return daemon_main(argc, argv, &cdcs_mss_role);
}
