#!/usr/bin/perl
# Writes collectord/lang_table.inc, collectord's language table, from cloc's own
# definitions: the tables of cloc's set_constants() (extensions, file names,
# #! interpreters, line continuations, and each language's comment filters) are
# read out of the installed cloc script and turned into C data.
#
# Why generated: collectord's counts are meant to be cloc's, language by
# language; cloc keeps ~300 languages, ~900 extensions and their filters in
# these tables and changes them between releases. Copying them by hand is how
# languages went missing; re-running this after a cloc upgrade picks up what
# changed (`tools/gen-lang-table.pl > collectord/lang_table.inc`, then
# `make test`, whose cloc comparison says whether the engine still agrees).
#
# Languages whose filters use a routine collectord does not implement (listed
# in the output's comment) are left out, and so are their extensions.
use strict;
use warnings;

my $cloc = shift // '/usr/bin/cloc';
open my $fh, '<', $cloc or die "gen-lang-table: cannot read $cloc: $!\n";
my $src = do { local $/; <$fh> };
close $fh;
my ($version) = $src =~ /^my \$VERSION\s*=\s*"([^"]+)"/m;
$version //= 'unknown';
my $from = index $src, "sub set_constants {";
my $to = index $src, "} # end sub set_constants()";
die "gen-lang-table: no set_constants() in $cloc\n" if $from < 0 || $to < $from;
{
    no strict;
    no warnings;
    eval substr($src, $from, $to - $from + 1) . "; 1" or die "gen-lang-table: $@";
}
my (%ext, %script, %file, %prefix, %filters, %notext, %notfile, %scale, %bin, %eol);
set_constants (\%ext, \%script, \%file, \%prefix, \%filters, \%notext, \%notfile, \%scale, \%bin,
               \%eol);

# Names of an extension whose language cloc decides by content; lang_count.c
# has the deciders it implements (the others' extensions are left out).
my %resolved = map { $_ => 1 } ('MATLAB/Mathematica/Objective-C/MUMPS/Mercury', 'Perl/Prolog',
    'TypeScript/Qt Linguist', 'C#/Smalltalk', 'F#/Forth', 'Verilog-SystemVerilog/Coq',
    'D/dtrace', 'Lisp/Julia', 'Pascal/Puppet', 'PHP/Pascal', 'Ant/XML', 'Maven/XML',
    'Fortran 77/Forth', 'IDL/Qt Project/Prolog/ProGuard', 'Lisp/OpenCL');

# Perl regular expression -> POSIX extended (glibc's regcomp), or undef.
sub posix {
    my ($re) = @_;
    my $out = '';
    my $i = 0;
    my $n = length $re;
    while ($i < $n) {
        my $c = substr $re, $i, 1;
        if ($c eq '\\') {
            my $d = substr $re, $i + 1, 1;
            $i += 2;
            if    ($d eq 's') { $out .= '[[:space:]]' }
            elsif ($d eq 'S') { $out .= '[^[:space:]]' }
            elsif ($d eq 'w') { $out .= '[[:alnum:]_]' }
            elsif ($d eq 'd') { $out .= '[0-9]' }
            elsif ($d eq 'b') { $out .= '\\b' }
            elsif ($d =~ /[0-7]/ && substr($re, $i - 1, 3) =~ /^([0-7]{2,3})/) {
                $out .= quotemeta_posix (chr oct $1);
                $i += length($1) - 1;
            } elsif ($d eq 'x' && substr($re, $i, 2) =~ /^([0-9a-fA-F]{2})/) {
                $out .= quotemeta_posix (chr hex $1);
                $i += 2;
            } elsif ($d =~ /[A-Za-z0-9]/) {
                return undef;    # \g1, \x{..}, \A ...
            } else {
                $out .= quotemeta_posix ($d);
            }
        } elsif ($c eq '[') {
            my $j = $i + 1;
            my $set = '[';
            if (substr($re, $j, 1) eq '^') { $set .= '^'; $j++ }
            my $body = '';
            my $first = 1;
            while ($j < $n && (substr($re, $j, 1) ne ']' || $first)) {
                my $e = substr $re, $j, 1;
                $first = 0;
                if ($e eq '\\') {
                    my $f = substr $re, $j + 1, 1;
                    $j += 2;
                    my %esc = (n => "\n", t => "\t", r => "\r", f => "\f");
                    if (exists $esc{$f}) { $body .= $esc{$f} }
                    elsif ($f =~ /[A-Za-z0-9]/) { return undef }
                    else { $body .= $f }
                    next;
                }
                $body .= $e;
                $j++;
            }
            return undef if $j >= $n;
            # A ']' first, '-' last, as POSIX brackets want them
            my $close = $body =~ s/\]//g;
            my $dash = $body =~ s/-$//;
            $set .= ($close ? ']' : '') . $body . ($dash ? '-' : '') . ']';
            $out .= $set;
            $i = $j + 1;
        } elsif ($c eq '(' && substr($re, $i, 3) eq '(?:') {
            $out .= '(';
            $i += 3;
        } elsif ($c eq '(' && substr($re, $i, 2) eq '(?') {
            return undef;
        } elsif ($c =~ /[*+?}]/ && substr($re, $i + 1, 1) eq '?') {
            return undef;    # lazy quantifiers
        } else {
            $out .= $c;
            $i++;
        }
    }
    return $out;
}

sub quotemeta_posix {
    my ($c) = @_;
    return '[]]' if $c eq ']';
    return '\\^' if $c eq '^';
    return '[\\]' if $c eq '\\';
    return $c if $c =~ /[A-Za-z0-9 '"<>!@#%&=,;:~`\/-]/ || ord $c > 127;
    return "[$c]";
}

# C string literal
sub cstr {
    my ($s) = @_;
    return 'NULL' unless defined $s;
    my $o = '';
    for my $ch (split //, $s) {
        my $o8 = ord $ch;
        if    ($ch eq '\\') { $o .= '\\\\' }
        elsif ($ch eq '"')  { $o .= '\\"' }
        elsif ($ch eq '?')  { $o .= '\\?' }    # no trigraphs
        elsif ($o8 < 32 || $o8 > 126) { $o .= sprintf '\\%03o', $o8 }
        else { $o .= $ch }
    }
    return "\"$o\"";
}

my (@regex, %regex_index);
sub regex_id {
    my ($perl, $icase) = @_;
    my $p = posix ($perl);
    return undef unless defined $p;
    my $key = "$icase\0$p";
    unless (exists $regex_index{$key}) {
        $regex_index{$key} = scalar @regex;
        push @regex, [$p, $icase, $perl];
    }
    return $regex_index{$key};
}

my %common = ('C' => "'C'", 'C++' => "'+'", 'HTML' => "'H'", 'Pascal' => "'P'",
              'PL/SQL' => "'L'", 'Smalltalk' => "'S'");

# cloc's routines without arguments, and lang_count.c's filter for each
my %plain = (remove_html_comments => 'F_HTML', docstring_to_C => 'F_DOCSTRING',
             powershell_to_C => 'F_POWERSHELL', elixir_doc_to_C => 'F_ELIXIR',
             remove_haskell_comments => 'F_HASKELL', remove_OCaml_comments => 'F_OCAML',
             remove_f77_comments => 'F_F77', remove_f90_comments => 'F_F90');

# One language's filters as C initialisers, or (undef, why)
sub filters_of {
    my ($lang) = @_;
    my @out;
    for my $f (@{$filters{$lang}}) {
        my ($op, @a) = @$f;
        if ($plain{$op}) {
            push @out, "{$plain{$op}, -1, -1, NULL, NULL, 0}";
        } elsif ($op eq 'remove_inline' || $op eq 'rm_comments_in_strings') {
            next;    # no effect on counts without --inline / --strip-str-comments
        } elsif ($op eq 'remove_matches') {
            if ($a[0] =~ /^\^\\s\*((?:\\[^A-Za-z0-9]|[^\\.*+?()\[\]{}|^\$])+)$/) {
                (my $lit = $1) =~ s/\\(.)/$1/g;
                push @out, "{F_PREFIX, -1, -1, " . cstr ($lit) . ", NULL, 0}";
            } elsif ($a[0] eq '^\s*$') {
                next;    # blank lines are gone before the filters
            } else {
                my $r = regex_id ($a[0], 1) // return (undef, "regex $a[0]");
                push @out, "{F_MATCH, $r, -1, NULL, NULL, 0}";
            }
        } elsif ($op eq 'call_regexp_common') {
            my $v = $common{$a[0]} // return (undef, "call_regexp_common $a[0]");
            push @out, "{F_COMMON, -1, -1, NULL, NULL, $v}";
        } elsif ($op eq 'remove_between_general') {
            push @out, "{F_BETWEEN, -1, -1, " . cstr ($a[0]) . ", " . cstr ($a[1]) . ", 0}";
        } elsif ($op eq 'remove_between_regex') {
            (my $s = $a[0]) =~ s/\.\*\?$//;    # S.*?E: a lazy tail or head changes nothing
            (my $e = $a[1]) =~ s/^\.\*\?//;
            my $r1 = regex_id ($s, 0) // return (undef, "regex $a[0]");
            my $r2 = regex_id ($e, 0) // return (undef, "regex $a[1]");
            push @out, "{F_BETWEEN_RE, $r1, $r2, NULL, NULL, 0}";
        } elsif ($op eq 'remove_below_above') {
            my $r1 = regex_id ($a[0], 0) // return (undef, "regex $a[0]");
            my $r2 = regex_id ($a[1], 0) // return (undef, "regex $a[1]");
            push @out, "{F_BELOW_ABOVE, $r1, $r2, NULL, NULL, 0}";
        } elsif ($op eq 'remove_below' || $op eq 'remove_above') {
            my $r = regex_id ($a[0], 0) // return (undef, "regex $a[0]");
            push @out, "{" . ($op eq 'remove_below' ? 'F_BELOW' : 'F_ABOVE') . ", $r, -1, NULL, NULL, 0}";
        } elsif ($op eq 'replace_regex') {
            my $r = regex_id ($a[0], 0) // return (undef, "regex $a[0]");
            push @out, "{F_REPLACE, $r, -1, " . cstr ($a[1]) . ", NULL, 0}";
        } elsif ($op eq 'replace_between_regex' && $a[0] eq q{(["'])(.*?/\*)\g1} && $a[2] eq '"xx"') {
            push @out, "{F_QUOTED_XX, -1, -1, \"/*\", NULL, 0}";
        } elsif ($op eq 'replace_between_regex' && $a[0] eq q{(["'])(.*?\*/)\g1} && $a[2] eq '"xx"') {
            push @out, "{F_QUOTED_XX, -1, -1, \"*/\", NULL, 0}";
        } elsif ($op eq 'replace_between_regex' && $a[0] eq q{(["'])(.*?/)(\*.*?)\g1}) {
            push @out, "{F_QUOTED_SPLIT, -1, -1, NULL, NULL, 0}";
        } else {
            return (undef, $op);
        }
    }
    return (\@out, undef);
}

# As cloc does before it looks: what its extension table names (a key or,
# by a quirk of iterating a hash as a list, a value) is code after all
delete @notext{%ext};

my %script_lang = map { $_ => 1 } values %script;
my (@langs, %lang_ok, @left_out);
for my $lang (sort keys %filters) {
    next if $lang eq 'X++' || $lang eq '(unknown)' || $resolved{$lang};    # its blank lines are not cloc's usual ones
    my ($f, $why) = filters_of ($lang);
    unless ($f) {
        push @left_out, "$lang ($why)";
        next;
    }
    my $cont = 'CONT_NONE, -1';
    if (defined (my $c = $eol{$lang})) {
        if ($c eq '\\\\$') {
            $cont = 'CONT_BACKSLASH, -1';
        } else {
            my $r = regex_id ($c, 1);
            $cont = defined $r ? "CONT_REGEX, $r" : 'CONT_NONE, -1';
        }
    }
    push @langs, [$lang, $f, $cont, $script_lang{$lang} ? 'true' : 'false'];
    $lang_ok{$lang} = 1;
}
my $max = 0;
$max < @{$_->[1]} and $max = @{$_->[1]} for @langs;

sub known { my ($l) = @_; return $lang_ok{$l} || $resolved{$l} }

print <<"EOF";
/*  lang_table.inc: cloc's languages as data, for lang_count.c.
    GENERATED by tools/gen-lang-table.pl from cloc $version: do not edit;
    re-run it after a cloc upgrade (the tool's comment says why the table is
    generated rather than written by hand).

    Left out (a filter lang_count.c does not implement):
EOF
for my $l (@left_out) { print "        $l\n" }
my %undecided;
for my $e (sort keys %ext) { push @{$undecided{$ext{$e}}}, $e unless known ($ext{$e}) }
print "    so these extensions are not counted (those of two or more languages: cloc decides\n    by rules on the content that lang_count.c does not port):\n";
for my $l (sort keys %undecided) { print "        ", join (" ", map { ".$_" } @{$undecided{$l}}), " ($l)\n" }
print "*/\n\n";
print "#define S_MAX_FILTERS $max\n\n";
print "// clang-format off\n";
print "static const char *const s_regex_src[] = {\n";
for my $i (0 .. $#regex) {
    (my $p = $regex[$i][2]) =~ s{\*/}{*\\/}g;
    printf "    %s, /* %d: %s */\n", cstr ($regex[$i][0]), $i, $p;
}
print "};\n";
print "static const bool s_regex_icase[] = {", join (", ", map { $_->[1] ? 'true' : 'false' } @regex), "};\n\n";
print "//  name, continuation, #! line is code, filters (cloc's order)\n";
print "static const lang_t s_langs[] = {\n";
for my $l (@langs) {
    my ($name, $f, $cont, $scr) = @$l;
    my $list = @$f ? join (", ", @$f) : "{F_PREFIX, -1, -1, NULL, NULL, 0}";
    printf "    {%s, %s, %s, %d, {%s}},\n", cstr ($name), $cont, $scr, scalar @$f, $list;
}
print "};\n\n";
# A sorted table of name -> language, the languages counted only
sub pairs {
    my ($comment, $name, $map) = @_;
    print "//  $comment\n";
    print "static const char *const ${name}[][2] = {\n";
    printf "    {%s, %s},\n", cstr ($_), cstr ($map->{$_}) for grep { known ($map->{$_}) } sort keys %$map;
    print "};\n\n";
}
pairs ("extension (cloc's case) -> language, sorted", "s_extensions", \%ext);
pairs ("file name -> language, sorted", "s_filenames", \%file);
pairs ("name before the first dot, when the extension is unknown", "s_prefixes", \%prefix);
pairs ("#! interpreter -> language, sorted", "s_interpreters", \%script);
print "//  extensions and file names cloc never counts, sorted\n";
print "static const char *const s_not_code_ext[] = {\n";
printf "    %s,\n", cstr ($_) for sort keys %notext;
print "};\n";
print "static const char *const s_not_code_file[] = {\n";
printf "    %s,\n", cstr ($_) for sort keys %notfile;
print "};\n";
print "// clang-format on\n";
