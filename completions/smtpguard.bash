# bash completion for smtpguard; "smtpguard install" copies it to --completion-dir.
_smtpguard() {
  local cur prev words cword
  _init_completion 2>/dev/null || { cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}; }
  local commands="run follow scan status unblock block allow explain install uninstall load-firewall config"
  local command="" w
  for w in "${COMP_WORDS[@]:1:COMP_CWORD-1}"; do
    case " $commands " in *" $w "*) command=$w; break ;; esac
  done
  if [[ -z $command ]]; then
    COMPREPLY=($(compgen -W "$commands --help --version --config" -- "$cur"))
    return
  fi
  case $prev in
    --log|--ufw-rules|--ufw6-rules|--access-map|--lock-file|--config|--cron-file|--metrics-file) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --state-dir|--postfix-config-dir|--journal-directory|--systemd-dir|--man-dir|--completion-dir) COMPREPLY=($(compgen -d -- "$cur")); return ;;
    --map-type) COMPREPLY=($(compgen -W "hash lmdb btree cdb cidr" -- "$cur")); return ;;
    --firewall) COMPREPLY=($(compgen -W "rules ipset nftables none" -- "$cur")); return ;;
  esac
  local options
  options=$(smtpguard "$command" --help 2>/dev/null | grep -oE -- '--[a-z0-9-]+|-[qvh]\b' | sort -u)
  COMPREPLY=($(compgen -W "$options" -- "$cur"))
}
complete -F _smtpguard smtpguard
