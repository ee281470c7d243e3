package toolboxcmd

// The help texts of open-vm-tools 12.2.0's English message catalog: the
// output scripts and users see, kept identical.
const (
	helpMain = "Usage: %s <command> [options] [subcommand]\n" +
		"Type '%s %s <command>' for help on a specific command.\n" +
		"Type '%s -v' to see the VMware Tools version.\n" +
		"Use '-q' option to suppress stdout output.\n" +
		"Most commands take a subcommand.\n\n" +
		"Available commands:\n" +
		"   config\n" +
		"   device\n" +
		"   disk (not available on all operating systems)\n" +
		"   globalconf (not available on all operating systems)\n" +
		"   gueststore (not available on all operating systems)\n" +
		"   info\n" +
		"   logging\n" +
		"   script\n" +
		"   stat\n" +
		"   timesync\n" +
		"   upgrade (not available on all operating systems)\n"

	helpConfig = "%s: modify Tools configuration\n" +
		"Usage: %s %s <subcommand>\n\n" +
		"Subcommands:\n" +
		"   get <section> <key>: display current value for <key>\n" +
		"   NOTE: If the <key> is not present in tools.conf, its\n" +
		"   value from the global configuration is returned if present\n" +
		"   set <section> <key> <value>: set <key> to <value>\n\n" +
		"   remove <section> <key>: remove <key>\n\n" +
		"<section> can be any supported section, such as logging, guestoperations or guestinfo.\n" +
		"<key> can be any configuration key.\n" +
		"<value> can be any value.\n"

	helpDevice = "%s: functions related to the virtual machine's hardware devices\n" +
		"Usage: %s %s <subcommand> [args]\n" +
		"dev is the name of the device.\n\n" +
		"Subcommands:\n" +
		"   enable <dev>: enable the device dev\n" +
		"   disable <dev>: disable the device dev\n" +
		"   list: list all available devices\n" +
		"   status <dev>: print the status of a device\n"

	helpDisk = "%s: perform disk shrink operations\n" +
		"Usage: %s %s <subcommand> [args]\n\n" +
		"Subcommands:\n" +
		"   list: list available locations\n" +
		"   shrink <location>: wipes and shrinks a file system at the given location\n" +
		"   shrinkonly: shrinks all disks\n" +
		"   wipe <location>: wipes a file system at the given location\n"

	helpGlobalConf = "%s: Manage global configuration downloads from the GuestStore\n" +
		"Usage: %s %s <subcommand>\n\n" +
		"ESX guests only subcommands:\n" +
		"   enable: Enable the global configuration module\n" +
		"   disable: Disable the global configuration module\n" +
		"   refresh: Trigger a new download of the global configuration from the GuestStore\n" +
		"   status: Print the status of the global configuration module\n"

	helpGuestStore = "%s: get resource content from GuestStore\n" +
		"Usage: %s %s <subcommand>\n\n" +
		"ESX guests only subcommands:\n" +
		"   getcontent <resource path> <output file>: get resource content from GuestStore and save to output file.\n\n" +
		"<resource path> starts with / and represents a unique resource in GuestStore. If it ends with /, defaults to retrieve the underlying 'metadata.json' resource.\n" +
		"<output file> is the path of a file to save resource content to.\n"

	helpInfo = "%s: update guest information on the host\n" +
		"Usage: %s %s update <infoclass>\n\n" +
		"Subcommands:\n" +
		"   update <infoclass>: update information identified by <infoclass>\n" +
		"<infoclass> can be 'network'\n"

	helpLog = "%s: modify tools logging\n" +
		"Usage: %s %s level <subcommand> <servicename> <level>\n\n" +
		"Subcommands:\n" +
		"   get <servicename>: display current level\n" +
		"   NOTE: If the level is not present in tools.conf, its\n" +
		"   value from the global configuration is returned if present\n" +
		"   set <servicename> <level>: set current level\n\n" +
		"<servicename> can be any supported service, such as vmsvc or vmusr\n" +
		"<level> can be one of error, critical, warning, info, message, debug\n" +
		"   default is %s\n"

	helpScript = "%s: control the scripts run in response to power operations\n" +
		"Usage: %s %s <power|resume|suspend|shutdown> <subcommand> [args]\n\n" +
		"Subcommands:\n" +
		"   enable: enable the given script and restore its path to the default\n" +
		"   disable: disable the given script\n" +
		"   set <full_path>: set the given script to the given path\n" +
		"   default: print the default path of the given script\n" +
		"   current: print the current path of the given script\n" +
		"   NOTE: If the path is not present in tools.conf, its\n" +
		"   value from the global configuration is returned if present\n"

	helpStat = "%s: print useful guest and host information\n" +
		"Usage: %s %s <subcommand>\n\n" +
		"Subcommands:\n" +
		"   hosttime: print the host time\n" +
		"   speed: print the CPU speed in MHz\n" +
		"ESX guests only subcommands:\n" +
		"   sessionid: print the current session id\n" +
		"   balloon: print memory ballooning information\n" +
		"   swap: print memory swapping information\n" +
		"   memlimit: print memory limit information\n" +
		"   memres: print memory reservation information\n" +
		"   cpures: print CPU reservation information\n" +
		"   cpulimit: print CPU limit information\n" +
		"   raw [<encoding> <stat name>]: print raw stat information\n" +
		"      <encoding> can be one of 'text', 'json', 'xml', 'yaml'.\n" +
		"      <stat name> includes session, host, resources, vscsi and\n" +
		"      vnet (Some stats like vscsi are two words, e.g. 'vscsi scsi0:0').\n" +
		"      Prints the available stats if <encoding> and <stat name>\n" +
		"      arguments are not specified.\n"

	helpTimesync = "%s: functions for controlling time synchronization on the guest OS\n" +
		"Usage: %s %s <subcommand>\n\n" +
		"Subcommands:\n" +
		"   enable: enable time synchronization\n" +
		"   disable: disable time synchronization\n" +
		"   status: print the time synchronization status\n"
)
