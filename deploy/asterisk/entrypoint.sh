#!/bin/sh
# Asterisk's configs cannot read the environment, and secrets live only there (.env): write them
# into the files the mounted configs #tryinclude, readable by Asterisk alone, then start Asterisk.
set -eu
: "${CALLCARD_AMI_SECRET:?set CALLCARD_AMI_SECRET in .env}"
: "${PHONE_PASSWORD:?set PHONE_PASSWORD in .env}"
user="${ASTERISK_USER:-asterisk}"
umask 077
printf 'secret = %s\n' "$CALLCARD_AMI_SECRET" > /etc/asterisk/manager_secret.conf
printf 'password = %s\n' "$PHONE_PASSWORD" > /etc/asterisk/pjsip_password.conf
chown "$user" /etc/asterisk/manager_secret.conf /etc/asterisk/pjsip_password.conf
# Recordings: the folder belongs to the callcard image's group (gid 10001) and passes it on
# (setgid), and Asterisk writes group-writable files, so the worker can delete old ones.
recordings=/var/spool/asterisk/monitor/callcard
mkdir -p "$recordings"
chown "$user":10001 "$recordings"
chmod 2770 "$recordings"
umask 007
exec asterisk -f -U "$user" -vvv
