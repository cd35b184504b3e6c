"""The name databases iptables consults: /etc/protocols and /etc/services.

A copy of Debian 12's netbase 6.4 files (the machine netlab's iptables output
was recorded on), so the model resolves ``-p gre``, ``--dport http`` and
prints ``dpt:http`` in ``iptables -L`` the way that machine does, without
reading files at run time. Entries: ``name number-or-port alias…`` separated
by ``;``.
"""

from __future__ import annotations

_PROTOCOLS = """\
ip 0 IP;hopopt 0 HOPOPT;icmp 1 ICMP;igmp 2 IGMP;ggp 3 GGP;ipencap 4 IP-ENCAP;st 5 ST;
tcp 6 TCP;egp 8 EGP;igp 9 IGP;pup 12 PUP;udp 17 UDP;hmp 20 HMP;xns-idp 22 XNS-IDP;
rdp 27 RDP;iso-tp4 29 ISO-TP4;dccp 33 DCCP;xtp 36 XTP;ddp 37 DDP;idpr-cmtp 38 IDPR-CMTP;
ipv6 41 IPv6;ipv6-route 43 IPv6-Route;ipv6-frag 44 IPv6-Frag;idrp 45 IDRP;rsvp 46 RSVP;
gre 47 GRE;esp 50 IPSEC-ESP;ah 51 IPSEC-AH;skip 57 SKIP;ipv6-icmp 58 IPv6-ICMP;
ipv6-nonxt 59 IPv6-NoNxt;ipv6-opts 60 IPv6-Opts;rspf 73 RSPF CPHB;vmtp 81 VMTP;
eigrp 88 EIGRP;ospf 89 OSPFIGP;ax.25 93 AX.25;ipip 94 IPIP;etherip 97 ETHERIP;
encap 98 ENCAP;pim 103 PIM;ipcomp 108 IPCOMP;vrrp 112 VRRP;l2tp 115 L2TP;isis 124 ISIS;
sctp 132 SCTP;fc 133 FC;mobility-header 135 Mobility-Header;udplite 136 UDPLite;
mpls-in-ip 137 MPLS-in-IP;manet 138;hip 139 HIP;shim6 140 Shim6;wesp 141 WESP;rohc 142 ROHC;
ethernet 143 Ethernet;mptcp 262 MPTCP;"""

_TCP_SERVICES = """\
tcpmux 1;echo 7;discard 9 sink null;systat 11 users;daytime 13;netstat 15;qotd 17 quote;
chargen 19 ttytst source;ftp-data 20;ftp 21;ssh 22;telnet 23;smtp 25 mail;time 37 timserver;
whois 43 nicname;tacacs 49;domain 53;gopher 70;finger 79;http 80 www;
kerberos 88 kerberos5 krb5 kerberos-sec;iso-tsap 102 tsap;acr-nema 104 dicom;pop3 110 pop-3;
sunrpc 111 portmapper;auth 113 authentication tap ident;nntp 119 readnews untp;
epmap 135 loc-srv;netbios-ssn 139;imap2 143 imap;snmp 161;snmp-trap 162 snmptrap;
cmip-man 163;cmip-agent 164;mailq 174;bgp 179;smux 199;qmtp 209;z3950 210 wais;pawserv 345;
zserv 346;rpc2portmap 369;codaauth2 370;ldap 389;svrloc 427;https 443;snpp 444;
microsoft-ds 445;kpasswd 464;submissions 465 ssmtp smtps urd;saft 487;rtsp 554;nqs 607;
qmqp 628;ipp 631;ldp 646;exec 512;login 513;shell 514 cmd syslog;printer 515 spooler;
gdomap 538;uucp 540 uucpd;klogin 543;kshell 544 krcmd;afpovertcp 548;nntps 563 snntp;
submission 587;ldaps 636;tinc 655;silc 706;kerberos-adm 749;domain-s 853;rsync 873;
ftps-data 989;ftps 990;telnets 992;imaps 993;pop3s 995;socks 1080;proofd 1093;rootd 1094;
openvpn 1194;rmiregistry 1099;lotusnote 1352 lotusnotes;ms-sql-s 1433;ingreslock 1524;
datametrics 1645 old-radius;sa-msg-port 1646 old-radacct;kermit 1649;groupwise 1677;
radius 1812;radius-acct 1813 radacct;cisco-sccp 2000;nfs 2049;gnunet 2086;rtcm-sc104 2101;
gsigatekeeper 2119;gris 2135;cvspserver 2401;venus 2430;venus-se 2431;codasrv 2432;
codasrv-se 2433;mon 2583;dict 2628;f5-globalsite 2792;gsiftp 2811;gpsd 2947;
gds-db 3050 gds_db;isns 3205;iscsi-target 3260;mysql 3306;ms-wbt-server 3389;nut 3493;
distcc 3632;daap 3689;svn 3690 subversion;suucp 4031;sysrqd 4094;sieve 4190;epmd 4369;
remctl 4373;f5-iquery 4353;ntske 4460;mtn 4691;radmin-port 4899;sip 5060;sip-tls 5061;
xmpp-client 5222 jabber-client;xmpp-server 5269 jabber-server;cfengine 5308;
postgresql 5432 postgres;freeciv 5556 rptp;amqps 5671;amqp 5672;x11 6000 x11-0;x11-1 6001;
x11-2 6002;x11-3 6003;x11-4 6004;x11-5 6005;x11-6 6006;x11-7 6007;gnutella-svc 6346;
gnutella-rtr 6347;redis 6379;sge-qmaster 6444 sge_qmaster;sge-execd 6445 sge_execd;
mysql-proxy 6446;ircs-u 6697;bbs 7000;font-service 7100 xfs;http-alt 8080 webcache;
puppet 8140;bacula-dir 9101;bacula-fd 9102;bacula-sd 9103;xmms2 9667;nbd 10809;
zabbix-agent 10050;zabbix-trapper 10051;amanda 10080;dicom 11112;hkp 11371;db-lsp 17500;
dcap 22125;gsidcap 22128;wnn6 22273;kerberos4 750 kerberos-iv kdc;kerberos-master 751;
krb-prop 754 krb_prop krb5_prop hprop;iprop 2121;supfilesrv 871;supfiledbg 1127;
poppassd 106;moira-db 775 moira_db;moira-update 777 moira_update;spamd 783;skkserv 1178;
rmtcfg 1236;xtel 1313;xtelw 1314;zebrasrv 2600;zebra 2601;ripd 2602;ripngd 2603;ospfd 2604;
bgpd 2605;ospf6d 2606;ospfapi 2607;isisd 2608;fax 4557;hylafax 4559;munin 4949 lrrd;
nrpe 5666;nsca 5667;canna 5680;syslog-tls 6514;sane-port 6566 sane saned;ircd 6667;
zope-ftp 8021;tproxy 8081;omniorb 8088;clc-build-daemon 8990;xinetd 9098;git 9418;zope 9673;
webmin 10000;kamanda 10081;amandaidx 10082;amidxtape 10083;sgi-cad 17004;binkp 24554;
asp 27374;csync2 30865;dircproxy 57000;tfido 60177;fido 60179;"""

_UDP_SERVICES = """\
echo 7;discard 9 sink null;daytime 13;chargen 19 ttytst source;fsp 21 fspd;
time 37 timserver;tacacs 49;domain 53;bootps 67;bootpc 68;tftp 69;
kerberos 88 kerberos5 krb5 kerberos-sec;sunrpc 111 portmapper;ntp 123;netbios-ns 137;
netbios-dgm 138;snmp 161;snmp-trap 162 snmptrap;cmip-man 163;cmip-agent 164;xdmcp 177;
ipx 213;ptp-event 319;ptp-general 320;rpc2portmap 369;codaauth2 370;clearcase 371 Clearcase;
ldap 389;svrloc 427;https 443;kpasswd 464;isakmp 500;rtsp 554;asf-rmcp 623;ldp 646;
biff 512 comsat;who 513 whod;syslog 514;talk 517;ntalk 518;route 520 router routed;
gdomap 538;dhcpv6-client 546;dhcpv6-server 547;ldaps 636;tinc 655;domain-s 853;openvpn 1194;
ms-sql-m 1434;datametrics 1645 old-radius;sa-msg-port 1646 old-radacct;l2f 1701 l2tp;
radius 1812;radius-acct 1813 radacct;nfs 2049;gnunet 2086;rtcm-sc104 2101;venus 2430;
venus-se 2431;codasrv 2432;codasrv-se 2433;mon 2583;icpv2 3130 icp;isns 3205;nut 3493;
ipsec-nat-t 4500;iax 4569;sip 5060;sip-tls 5061;mdns 5353;gnutella-svc 6346;
gnutella-rtr 6347;babel 6696;afs3-fileserver 7000;afs3-callback 7001;afs3-prserver 7002;
afs3-vlserver 7003;afs3-kaserver 7004;afs3-volser 7005;afs3-bos 7007;afs3-update 7008;
afs3-rmtsys 7009;kerberos4 750 kerberos-iv kdc;kerberos-master 751 kerberos_master;
passwd-server 752 passwd_server;zephyr-srv 2102;zephyr-clt 2103;zephyr-hm 2104;
moira-ureg 779 moira_ureg;predict 1210;rplay 5555;sgi-cmsd 17001;sgi-crsd 17002;
sgi-gcd 17003;asp 27374;"""


def _table(text: str) -> list[tuple[str, int, tuple[str, ...]]]:
    rows = []
    for entry in text.split(";"):
        words = entry.split()
        if words:
            rows.append((words[0], int(words[1]), tuple(words[2:])))
    return rows


def _by_name(rows: list[tuple[str, int, tuple[str, ...]]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, number, aliases in rows:
        for word in (name, *aliases):
            out.setdefault(word, number)
    return out


def _by_number(rows: list[tuple[str, int, tuple[str, ...]]]) -> dict[int, str]:
    out: dict[int, str] = {}
    for name, number, _aliases in rows:
        out.setdefault(number, name)
    return out


_P = _table(_PROTOCOLS)
PROTOCOL_NUMBERS: dict[str, int] = _by_name(_P)        # getprotobyname (names and aliases)
PROTOCOL_NAMES: dict[int, str] = _by_number(_P)        # getprotobynumber (first name)
SERVICE_PORTS: dict[str, dict[str, int]] = {           # getservbyname(name, proto)
    "tcp": _by_name(_table(_TCP_SERVICES)), "udp": _by_name(_table(_UDP_SERVICES))}
SERVICE_NAMES: dict[str, dict[int, str]] = {           # getservbyport(port, proto)
    "tcp": _by_number(_table(_TCP_SERVICES)), "udp": _by_number(_table(_UDP_SERVICES))}
# /etc/hosts and /etc/networks as iptables -L (without -n) resolves addresses.
HOST_NAMES: dict[str, str] = {"127.0.0.1": "localhost"}
NETWORK_NAMES: dict[str, str] = {"0.0.0.0": "default", "127.0.0.0": "loopback",
                                 "169.254.0.0": "link-local"}
